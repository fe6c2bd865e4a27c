"""``advlit reproduce --table N``: every training run of a paper table, as ordinary ``advlit fit`` runs."""

import argparse
import concurrent.futures
import contextlib
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from advlit.reproduction.kernels import kernel_note
from advlit.reproduction.run_settings import differing_settings, lookup, parsed_config, run_config
from advlit.runtime.checkpoints import newest_loadable
from advlit.runtime.driver import child_env
from advlit.runtime.errors import ConfigError, MissingDataError
from advlit.runtime.files import atomic_write

MIXES = ["clean", "fgsm", "jsma", "cw", "fgsm_jsma", "fgsm_cw", "jsma_cw", "fgsm_jsma_cw"]
PROFILES = ["paper", "quick"]
FRONTIER = "frontier"  # beyond the paper: three defenders against stronger transfer attacks (docs/reproduction.md)
FRONTIER_RUNS = {"clean": ("clean.yaml",), "fgsm_jsma_cw": ("fgsm_jsma_cw.yaml",),
                 "fgsm_jsma_cw_ensemble": ("fgsm_jsma_cw.yaml", "fgsm_jsma_cw_ensemble.yaml")}  # fmt: skip
TABLES: list[int | str] = [2, 3, 4, 5, FRONTIER]
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SEED_STRIDE = 1000  # seed k moves every seed by k * SEED_STRIDE


def seed_values(seed: int, run: "Run | None" = None) -> dict[str, int]:
    """The settings that reseed every network of ``run`` for seed ``seed`` (0: the defaults).

    The defaults are seed_everything 0 (the defended network's init), data.seed 0 (its data order and
    augmentation), data.source_seed 1 (the defender's source network), the attackers' seeds (2 in the
    profiles) and, for a run with ensemble adversarial training, its extra sources' seeds; seed k
    adds k * SEED_STRIDE to each, so the networks stay distinct from each other. (The extra sources'
    offset is given to those runs only: the runs made before it existed remain the same runs.)
    """
    if seed < 0:
        raise ConfigError(f"seed {seed} must be >= 0")
    offset = SEED_STRIDE * seed
    extra = {"data.extra_source_seed_offset": offset} if run is not None and run.extra_sources else {}
    return {"seed_everything": offset, "data.seed": offset, "data.source_seed": 1 + offset, **extra,
            "transfer.attacker_seed_offset": offset}  # fmt: skip


def seed_overrides(seed: int, run: "Run | None" = None) -> list[str]:
    """``advlit fit`` flags of :func:`seed_values` (none for seed 0, which runs with the defaults)."""
    values = seed_values(seed, run)
    return [f"--{key}={value}" for key, value in values.items()] if seed else []


def check_seed_flags(seeds: list[int], passthrough: list[str], runs: "list[Run]") -> None:
    """Refuse extra flags (or ``--config`` files) that override the reseeding: given after it, they
    win, and every seed would be the same run. Checked on each kind of run's parsed config; extra
    source networks given to a run that is not reseeded as an ensemble-trained one are refused too."""
    if not any(seeds):
        return
    clash = set()
    for run in {r.extra_sources: r for r in runs}.values():
        config = parsed_config(tuple(fit_command(Path("results"), run, passthrough, seed=1)[4:]))
        clash |= {key for key, expected in seed_values(1, run).items() if lookup(config, key) != expected}
        if not run.extra_sources and lookup(config, "data.extra_source_seeds"):
            raise ConfigError(f"run {run.name} gets data.extra_source_seeds, which --seeds would not reseed; "
                              "ensemble adversarial training is the frontier's fgsm_jsma_cw_ensemble run")  # fmt: skip
    if clash:
        raise ConfigError(f"--seeds sets {', '.join('--' + k for k in sorted(clash))} itself; leave them out")


def seed_folder(results: Path, seed: int) -> Path:
    """Seed 0's runs live in the profile's folder itself (as before seeds existed), seed k's in ``seed<k>/``."""
    return results if seed == 0 else results / f"seed{seed}"


@dataclass(frozen=True)
class Run:
    """One training run of a table: its name, config files and extra overrides; ``extra_sources``:
    it trains on copies made on several source networks (ensemble adversarial training)."""

    table: int | str
    name: str
    configs: tuple[str, ...]
    overrides: tuple[str, ...] = field(default=())
    extra_sources: bool = False


def parse_table(text: str) -> int | str:
    """``--table``'s value: a paper table's number, or ``frontier``."""
    return int(text) if text.isdigit() else text


def table_folder(table: int | str) -> str:
    """A table's folder (and TensorBoard experiment) name: ``table2``..., or ``frontier``."""
    return table if table == FRONTIER else f"table{table}"


def grid(table: int | str, profile: str) -> list[Run]:
    """The runs of ``table`` under ``profile`` (config files relative to ``configs/``).

    Table 5 trains nothing of its own: its cells are the Table 2 (defender M) and Table 4 (M')
    runs scored against both attackers, which every profile run has. ``frontier`` (beyond the
    paper): the undefended, the FGSM+JSMA+C&W and the ensemble-adversarially-trained defenders
    (with augmentation, as in Table 2), each scored against the attackers and attacks of
    ``transfer_frontier.yaml``.
    """
    if table not in TABLES:
        raise ConfigError(f"table {table} is unknown; choose one of {TABLES}")
    if profile not in PROFILES:
        raise ConfigError(f"profile {profile!r} is unknown; choose one of {PROFILES}")
    if table == 5:  # Table 5 crosses Tables 2 (M) and 4 (M') with both attackers, A and A'
        return grid(2, profile) + grid(4, profile)
    prof = f"profiles/{profile}.yaml"
    if table == FRONTIER:
        return [Run(table, name, (*files, prof, "transfer_frontier.yaml"), extra_sources=name.endswith("_ensemble"))
                for name, files in FRONTIER_RUNS.items()]  # fmt: skip
    overlay = {2: (), 3: ("resnet18.yaml",), 4: ("noaug.yaml",)}[table]
    return [Run(table, mix, (f"{mix}.yaml", *overlay, prof)) for mix in MIXES]


def check_profile(results: Path, profile: str) -> None:
    """Claim ``results`` for ``profile``; a folder holding another profile's runs is refused. A claimed
    folder's marker is never written again and a new one is written atomically, so drivers started
    side by side never read it half-written."""
    marker = results / "PROFILE"
    if marker.exists():
        claimed = marker.read_text().strip()
        if claimed != profile:
            raise ConfigError(
                f"{results} holds runs of profile {claimed!r}, not {profile!r}; use another --results folder"
            )
        return
    results.mkdir(parents=True, exist_ok=True)
    atomic_write(f"{profile}\n".encode(), marker)


def settings_changed(results: Path, run: Run, folder: Path, passthrough: list[str], seed: int = 0) -> list[str]:
    """How the finished run in ``folder`` differs from what its command for ``seed`` with ``passthrough``
    would make (:func:`advlit.reproduction.run_settings.differing_settings`); empty when it is the same run."""
    old = run_config(folder)
    if old is None:
        return ["no config.yaml to compare its settings with"]
    now = parsed_config(tuple(fit_command(results, run, passthrough, seed=seed)[4:]))
    return differing_settings(old, now, lambda: parsed_config(tuple(fit_command(results, run, [])[4:])))


def check_finished_runs(runs: list["Run"], results: Path, passthrough: list[str], seed: int = 0) -> None:
    """Refuse a table whose finished runs were made with other settings than its command gives now,
    before any run starts."""
    for run in runs:
        folder = run_folder(results, run)
        if (folder / "metrics.json").exists() and (
            changed := settings_changed(results, run, folder, passthrough, seed)
        ):
            raise ConfigError(
                f"{folder} finished with other settings ({'; '.join(changed)}); give the flags it was made "
                "with, or use another --results folder"
            )


def run_folder(results: Path, run: Run) -> Path:
    """Where a run's TensorBoard files and metrics.json go."""
    return results / table_folder(run.table) / run.name


def last_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint of the unfinished run in ``folder`` that loads; None if none."""
    return newest_loadable(folder / "checkpoints")


def fit_command(
    results: Path, run: Run, passthrough: list[str], resume_from: Path | None = None, seed: int = 0
) -> list[str]:
    """The ``advlit fit`` command line of one run for ``seed`` (:func:`seed_overrides`), then the
    user's ``passthrough`` flags (``--ckpt_path`` when it resumes)."""
    cmd = [sys.executable, "-m", "advlit", "fit"]
    for config in run.configs:
        cmd += ["--config", str(CONFIGS / config)]
    return cmd + [
        *run.overrides,
        f"--trainer.logger.init_args.save_dir={results}",
        f"--trainer.logger.init_args.name={table_folder(run.table)}",
        f"--trainer.logger.init_args.version={run.name}",
        *seed_overrides(seed, run),
        *passthrough,
        *([f"--ckpt_path={resume_from}"] if resume_from else []),
    ]


@contextlib.contextmanager
def run_lock(folder: Path) -> Iterator[bool]:
    """Hold a lock on the run ``folder`` (True), or yield False when another process holds it: two
    ``advlit reproduce`` processes (``--table 5`` beside ``--table 2``) never train one run twice."""
    import filelock  # flock where the file system has it, else its soft lock (advlit.study.cache.locked)

    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(folder.parent / f".{folder.name}.lock")
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def restart_advice(run: "Run", seed: int = 0) -> str:
    """The flags that start this one stuck run over (a bare ``--restart`` starts every unfinished one over)."""
    return f"--runs {run.name} --seeds {seed} --restart starts it over"


def start_point(folder: Path, restart: bool) -> tuple[str, Path | None]:
    """How an unfinished run starts: ``("resume", checkpoint)``, ``("stuck", None)`` (checkpoints
    that do not load: never deleted, the run fails), ``("over", None)`` (its folder goes first) or ``("new", None)``."""
    resume_from = None if restart else last_checkpoint(folder)
    if resume_from:
        return "resume", resume_from
    if not restart and any((folder / "checkpoints").glob("*.ckpt")):
        return "stuck", None
    return ("over" if folder.exists() else "new"), None


def launch(
    tag: str,
    results: Path,
    run: Run,
    folder: Path,
    passthrough: list[str],
    restart: bool,
    log: Path | None = None,
    seed: int = 0,
) -> int:
    """Run one unfinished run: resumed from its last checkpoint, or from epoch 0 (``restart``, or no
    checkpoint); its exit code. Checkpoints that exist but do not load stop the run (never deleted).
    ``log``: a file that takes the run's output (appended), when runs share the terminal."""
    how, resume_from = start_point(folder, restart)
    if how == "stuck":
        print(
            f"{tag}: FAILED: no checkpoint in {folder / 'checkpoints'} loads; {restart_advice(run, seed)}",
            flush=True,
        )
        return 1
    if how == "resume":
        print(f"{tag}: resuming from {resume_from}", flush=True)
    elif how == "over":
        print(f"{tag}: starting over; removing the unfinished run's {folder}", flush=True)
        shutil.rmtree(folder)
    cmd = fit_command(results, run, passthrough, resume_from, seed)
    print(f"{tag}: {' '.join(cmd[2:])}" + (f" (output: {log})" if log else ""), flush=True)
    t0 = time.perf_counter()
    code = subprocess.call(cmd, env=child_env()) if log is None else call_logged(cmd, log)
    print(f"{tag}: {'ok' if code == 0 else f'FAILED (exit {code})'} in {time.perf_counter() - t0:.0f} s", flush=True)
    return code


_CHILDREN: set[subprocess.Popen] = set()  # the runs that --parallel's threads are waiting on
_CHILDREN_LOCK = threading.Lock()
_STOPPING = threading.Event()  # set by stop_children: a thread past its checks starts no run


def call_logged(cmd: list[str], log: Path) -> int:
    """Run ``cmd`` with its output appended to ``log``; its exit code. The child is registered, so
    that :func:`stop_children` can end it when the driver is interrupted."""
    with open(log, "a") as out:
        with _CHILDREN_LOCK:  # no run starts once stop_children has run
            if _STOPPING.is_set():
                return 1
            child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=child_env())
            _CHILDREN.add(child)
        try:
            return child.wait()
        finally:
            with _CHILDREN_LOCK:
                _CHILDREN.discard(child)


def end_runs_on_sigterm() -> Callable | int | None:
    """Make ``kill PID`` of the driver end its runs too: SIGTERM raises SystemExit(143) here, which
    ``subprocess.call`` answers by killing its run and ``--parallel`` by :func:`stop_children`
    (each run resumes from its last epoch's checkpoint). By default a run would outlive its driver.
    Returns the handler it replaced (for :func:`main` to put back), None off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def exit_(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, exit_)


def stop_children() -> None:
    """Terminate every registered run (they save nothing half-done: each resumes from its last epoch)."""
    with _CHILDREN_LOCK:
        _STOPPING.set()
        children = list(_CHILDREN)
    for child in children:
        child.terminate()


def dry_run_line(
    tag: str, results: Path, run: Run, folder: Path, passthrough: list[str], restart: bool, seed: int = 0
) -> str:
    """What :func:`launch` would do with the run, in one line."""
    how, resume_from = start_point(folder, restart)
    if how == "stuck":
        return f"{tag}: would FAIL: no checkpoint in {folder / 'checkpoints'} loads; {restart_advice(run, seed)}"
    where = {"resume": f"resumes from {resume_from.name if resume_from else ''}: ",
             "over": "starts over, removing its unfinished folder: ", "new": ""}[how]  # fmt: skip
    return f"{tag}: {where}{' '.join(fit_command(results, run, passthrough, resume_from, seed)[2:])}"


def table_runs(table: int | str, profile: str, only: list[str] | None = None) -> list[Run]:
    """The runs of the table, or only those named in ``only`` (a ConfigError naming unknown ones)."""
    runs = grid(table, profile)
    if only:
        unknown = sorted(set(only) - {r.name for r in runs})
        if unknown:
            raise ConfigError(f"--runs {unknown} are not runs of table {table}; choose from {[r.name for r in runs]}")
        runs = [r for r in runs if r.name in only]
    return runs


def reproduce(
    table: int | str,
    profile: str,
    results: Path,
    passthrough: list[str],
    dry_run: bool = False,
    only: list[str] | None = None,
    seed: int = 0,
    restart: bool = False,
    parallel: int = 1,
) -> int:
    """Run every unfinished run of the table (or of ``only``, run names) for ``seed`` (see
    :func:`seed_overrides`); returns the number of failed runs. A run killed mid-way resumes from
    its last checkpoint (every epoch's checkpoint holds the per-epoch accuracies so far).

    ``parallel`` runs train at once (on one device, or side by side on the CPU's cores: give each
    ``--threads``), each taking the next unfinished run in the table's order; their output goes to
    ``<table folder>/<run>.log``. A network or set that several need is made by the first to reach
    it while the others wait for it in the cache."""
    if parallel < 1:
        raise ConfigError(f"--parallel={parallel} must be >= 1")
    runs = table_runs(table, profile, only)
    check_seed_flags([seed], passthrough, runs)
    profile_folder, results = results, seed_folder(results, seed)
    check_finished_runs(runs, results, passthrough, seed)
    if not dry_run:
        check_profile(profile_folder, profile)  # the report finds the profile here, seed 0 run or not
        check_profile(results, profile)
        if note := kernel_note([run_folder(results, run) for run in grid(table, profile)]):  # the whole table
            print(f"advlit reproduce: {note}", file=sys.stderr, flush=True)
    start = time.perf_counter()

    def attempt(i: int, run: Run) -> str:
        """``done``, ``ok``, ``skipped`` or ``failed``."""
        tag, folder = f"[{i}/{len(runs)}] {run.name}", run_folder(results, run)
        if (folder / "metrics.json").exists():
            print(f"{tag}: done already ({folder / 'metrics.json'})", flush=True)
            return "done"
        if dry_run:
            print(dry_run_line(tag, results, run, folder, passthrough, restart, seed), flush=True)
            return "skipped"
        with run_lock(folder) as mine:
            if not mine:
                print(f"{tag}: running in another process; skipped", flush=True)
                return "skipped"
            if (folder / "metrics.json").exists():  # finished by another process since the check above
                if changed := settings_changed(results, run, folder, passthrough, seed):
                    print(f"{tag}: FAILED: finished meanwhile with other settings ({'; '.join(changed)})", flush=True)
                    return "failed"
                print(f"{tag}: done already ({folder / 'metrics.json'})", flush=True)
                return "done"
            log = folder.parent / f"{run.name}.log" if parallel > 1 else None
            return "ok" if launch(tag, results, run, folder, passthrough, restart, log, seed) == 0 else "failed"

    jobs = list(enumerate(runs, 1))
    if parallel == 1 or dry_run:
        outcomes = [attempt(i, run) for i, run in jobs]
    else:
        _STOPPING.clear()
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=parallel)
        try:
            outcomes = list(pool.map(lambda job: attempt(*job), jobs))
        except BaseException:  # an interrupt of the driver alone (kill -INT) reaches no child: end them here
            pool.shutdown(wait=False, cancel_futures=True)
            stop_children()
            raise
        pool.shutdown()
    failed = [run.name for run, outcome in zip(runs, outcomes, strict=True) if outcome == "failed"]
    if dry_run:
        done = outcomes.count("done")
        print(f"table {table} ({profile}): {len(runs) - done} to run, {done} done (dry run: nothing ran)")
        return 0
    print(
        f"table {table} ({profile}): {len(runs) - len(failed)}/{len(runs)} runs done "
        f"in {time.perf_counter() - start:.0f} s"
    )
    if failed:
        print(f"failed runs: {', '.join(failed)}", file=sys.stderr)
    return len(failed)


def print_plan(args: argparse.Namespace, runs: list[Run], passthrough: list[str]) -> None:
    """``--plan``: the stages of every unfinished run of every seed, estimated, and the total."""
    from advlit.reproduction.table_plan import table_plan

    todo = []
    for seed in args.seeds:
        results = seed_folder(args.results / args.profile, seed)
        for run in runs:
            folder = run_folder(results, run)
            if not (folder / "metrics.json").exists():
                how, resume_from = start_point(folder, args.restart)
                label = f"{'' if len(args.seeds) == 1 else f'seed {seed} '}table {run.table} {run.name}"
                if how == "stuck":
                    print(f"{label}: would FAIL (no checkpoint loads; {restart_advice(run, seed)}): not counted")
                    continue
                flags = fit_command(results, run, passthrough, seed=seed)[4:]
                todo.append((label, flags, resume_from.name if resume_from else None))
    print(f"table {args.table} ({args.profile}): {len(todo)} runs to make", flush=True)
    for line in table_plan(todo):
        print(line, flush=True)


def main(argv: list[str]) -> None:
    """Entry point of ``advlit reproduce``; unknown flags go to every ``advlit fit``."""
    parser = argparse.ArgumentParser(
        prog="advlit reproduce",
        description="Run every training run of a paper table (extra flags such as --data.data_dir or "
        "--trainer.devices are passed to each advlit fit).",
        allow_abbrev=False,  # a shortened flag is passed on to advlit fit, which refuses it, never matched silently
    )
    parser.add_argument("--table", type=parse_table, required=True, help=f"one of {TABLES}")
    parser.add_argument("--profile", default="paper", help=f"one of {PROFILES}")
    parser.add_argument("--results", type=Path, default=Path("results"), help="folder of the runs (default: results)")
    parser.add_argument("--dry_run", action="store_true", help="print the runs, run nothing")
    parser.add_argument(
        "--plan", action="store_true", help="print every unfinished run's stages with time estimates, run nothing"
    )
    parser.add_argument(
        "--restart", action="store_true", help="start unfinished runs from epoch 0, not from their last checkpoint"
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0], metavar="K",
        help="repeat every run with every network reseeded (seed k: each seed + 1000 k; default: 0 only)",
    )  # fmt: skip
    parser.add_argument(
        "--runs", nargs="+", metavar="MIX", help="only these runs of the table (e.g. clean fgsm_jsma_cw)"
    )
    parser.add_argument(
        "--launcher", choices=["local", "slurm"], default="local",
        help="local: one run after another here; slurm: a job building the shared stages, then a job array "
        "(--slurm.partition, --slurm.gpus_per_job, --slurm.time_min, --slurm.array_parallelism, ...)",
    )  # fmt: skip
    parser.add_argument("--status", action="store_true", help="with --launcher slurm: what is done, running, failed")
    parser.add_argument(
        "--parallel", type=int, default=1, metavar="K",
        help="local: K runs at once (on one device, or on the CPU's cores with --threads); output in <run>.log",
    )  # fmt: skip
    from advlit.reproduction import slurm

    try:
        slurm_flags, argv = slurm.split_slurm_flags(argv)
    except ConfigError as err:
        print(f"advlit reproduce: error: {err}", file=sys.stderr)
        sys.exit(2)
    args, passthrough = parser.parse_known_args(argv)
    previous_sigterm = end_runs_on_sigterm()
    try:
        if args.parallel < 1:
            raise ConfigError(f"--parallel={args.parallel} must be >= 1")
        if args.parallel > 1 and args.launcher != "local":
            raise ConfigError("--parallel goes with --launcher local (on SLURM, --slurm.array_parallelism)")
        if args.launcher == "slurm" or slurm_flags or args.status:
            if args.launcher != "slurm":
                raise ConfigError("--slurm.* and --status go with --launcher slurm")
            settings = slurm.settings_from(slurm_flags)
            profile_folder = args.results / args.profile
            if args.status:
                for line in slurm.status_lines(profile_folder, args.table):
                    print(line)
                return
            slurm.check_sbatch()
        try_slurm = args.launcher == "slurm"
        runs = table_runs(args.table, args.profile, args.runs)
        check_seed_flags(args.seeds, passthrough, runs)
        for seed in args.seeds:  # every seed's finished runs, before any run starts
            folder = seed_folder(args.results / args.profile, seed)
            check_finished_runs(runs, folder, passthrough, seed)
        if args.plan:
            print_plan(args, runs, passthrough)
            return
        if try_slurm:
            for seed in args.seeds:
                check_profile(seed_folder(profile_folder, seed), args.profile)
            check_profile(profile_folder, args.profile)
            state = slurm.submit(args.table, args.profile, profile_folder, passthrough, args.seeds, args.runs,
                                 settings)  # fmt: skip
            print(
                f"submitted: job {state['prepare']} builds the shared stages; array {state['jobs'][0].split('_')[0]} "
                f"runs {len(state['jobs'])} runs after it (at most {settings.array_parallelism} at once)"
            )
            print(f"logs: {state['logs']}; follow with: advlit reproduce --table {args.table} --profile {args.profile} "
                  f"--results {args.results} --launcher slurm --status")  # fmt: skip
            return
        failed = 0
        for seed in args.seeds:
            if len(args.seeds) > 1:
                print(f"seed {seed}:", flush=True)
            failed += reproduce(
                args.table,
                args.profile,
                args.results / args.profile,
                passthrough,
                args.dry_run,
                args.runs,
                seed,
                args.restart,
                args.parallel,
            )
    except (ConfigError, MissingDataError) as err:
        print(f"advlit reproduce: error: {err}", file=sys.stderr)
        sys.exit(2)
    finally:
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
    sys.exit(1 if failed else 0)
