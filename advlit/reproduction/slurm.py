"""``advlit reproduce --launcher slurm``: a table's runs as a SLURM job array, through submitit.

One job builds the shared stages (the attackers' and the defender's networks, the adversarial sets)
into the cache; a job array that depends on it runs one ``advlit fit`` per (seed, run), each resuming
from its newest checkpoint when SLURM requeues it (a timeout or a preemption: submitit's checkpoint
hook resubmits the same element). A job with G GPUs runs G tasks on one node (``srun``, tasks per
node = devices), each the same ``advlit fit`` with ``--trainer.devices G --trainer.strategy ddp``;
Lightning's SLURMEnvironment makes them one DDP run. The submission is recorded in
``results/<profile>/slurm/table<N>.json``; ``--status`` reports each run from it.
"""

import json
import os
import signal
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from advlit.reproduction.reproduce import (
    Run,
    fit_command,
    last_checkpoint,
    run_folder,
    seed_folder,
    table_folder,
    table_runs,
)
from advlit.runtime.errors import ConfigError


@dataclass(frozen=True)
class SlurmSettings:
    """What each job asks SLURM for (``--slurm.<name>`` flags of ``advlit reproduce``).

    Args:
        partition: the partition (None: the cluster's default).
        time_min: wall-clock limit of each job in minutes; a run that needs longer is requeued
            at the limit and resumes from its last epoch.
        gpus_per_job: GPUs of each training job, on one node (0: CPU only); its tasks = GPUs.
        cpus_per_task: CPU cores of each task.
        mem_gb: memory of each job in GB.
        array_parallelism: at most this many runs of the array at once.
        prepare_time_min: wall-clock limit of the job that builds the shared stages.
        account: the SLURM account (None: the user's default).
    """

    partition: str | None = None
    time_min: int = 240
    gpus_per_job: int = 0
    cpus_per_task: int = 2
    mem_gb: int = 16
    array_parallelism: int = 8
    prepare_time_min: int = 720
    account: str | None = None

    def __post_init__(self) -> None:
        for name in ("time_min", "cpus_per_task", "mem_gb", "array_parallelism", "prepare_time_min"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--slurm.{name}={getattr(self, name)} must be >= 1")
        if self.gpus_per_job < 0:
            raise ConfigError(f"--slurm.gpus_per_job={self.gpus_per_job} must be >= 0")

    def job_parameters(self, training: bool) -> dict:
        """Submitit's ``slurm_*`` parameters of a training job (or of the preparing job)."""
        gpus = self.gpus_per_job
        params = {
            "slurm_time": self.time_min if training else self.prepare_time_min,
            "slurm_cpus_per_task": self.cpus_per_task,
            "slurm_mem_gb": self.mem_gb,
            "slurm_nodes": 1,
            "slurm_tasks_per_node": max(gpus, 1) if training else 1,  # Lightning: tasks per node = devices
            "slurm_signal_delay_s": 120,  # time to requeue before the limit
            "slurm_additional_parameters": {"open-mode": "append"},  # a requeued job's log keeps the earlier parts
        }
        if gpus:
            params["slurm_gpus_per_node"] = gpus if training else 1
        if self.partition:
            params["slurm_partition"] = self.partition
        if self.account:
            params["slurm_account"] = self.account
        return params

    def device_flags(self) -> list[str]:
        """``advlit fit`` flags for the job's devices (none on the CPU: Lightning's defaults)."""
        if not self.gpus_per_job:
            return ["--trainer.accelerator", "cpu"]
        strategy = "ddp" if self.gpus_per_job > 1 else "auto"
        return ["--trainer.accelerator", "gpu", "--trainer.devices", str(self.gpus_per_job),
                "--trainer.strategy", strategy]  # fmt: skip


def state_path(results: Path, table: int | str) -> Path:
    """Where a submission of ``table`` is recorded (``results`` is the profile's folder)."""
    return results / "slurm" / f"{table_folder(table)}.json"


def array_elements(table: int | str, profile: str, seeds: list[int], only: list[str] | None) -> list[tuple[int, Run]]:
    """``(seed, run)`` of every element of the array, in order (Table 5: Table 2's runs and Table 4's)."""
    return [(seed, run) for seed in seeds for run in table_runs(table, profile, only)]


def label(seed: int, run: Run) -> str:
    """``seed 1 table 2 clean``: an element in words."""
    return f"seed {seed} table {run.table} {run.name}"


class TrainRun:
    """One array element: ``advlit fit`` for one (seed, run), resumed from its newest checkpoint.

    A picklable callable for submitit; its ``checkpoint`` hook (called when SLURM signals a timeout
    or preemption) resubmits the same element, which then resumes from the last epoch's checkpoint.
    Every task of a multi-GPU job runs the same command; Lightning makes them one DDP run."""

    def __init__(self, table: int | str, profile: str, results: str, passthrough: list[str], elements: list) -> None:
        self.table, self.profile, self.results = table, profile, results
        self.passthrough, self.elements = passthrough, elements

    def command(self, index: int) -> tuple[list[str], Path] | None:
        """The ``advlit fit`` command of element ``index`` and its folder; None when it is done."""
        seed, run = self.elements[index]
        results = seed_folder(Path(self.results), seed)
        folder = run_folder(results, run)
        if (folder / "metrics.json").exists():
            return None
        resume_from = last_checkpoint(folder) if folder.exists() else None
        return fit_command(results, run, self.passthrough, resume_from, seed), folder

    def __call__(self, index: int | None = None) -> int:
        index = int(os.environ.get("SLURM_ARRAY_TASK_ID", 0)) if index is None else index
        found = self.command(index)
        if found is None:
            print(f"element {index} {label(*self.elements[index])}: done already", flush=True)
            return 0
        cmd, folder = found
        print(f"element {index} {label(*self.elements[index])}: {' '.join(cmd)}", flush=True)
        code = subprocess.call(cmd, preexec_fn=_leave_usr2_to_submitit)
        if code != 0:
            raise RuntimeError(f"advlit fit exited {code} for {label(*self.elements[index])} ({folder})")
        return code

    def checkpoint(self, index: int | None = None):
        """Submitit's hook at a timeout or preemption: run the same element again (it resumes)."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, index)


def _leave_usr2_to_submitit() -> None:
    """In ``advlit fit``: ignore SLURM's USR2 (submitit's warning before the time limit), which would
    kill it; the job's submitit process takes it, requeues the element, and the fit resumes later."""
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


class Prepare:
    """The job that builds every shared stage of the table's runs into the cache, once."""

    def __init__(self, table: int | str, profile: str, results: str, passthrough: list[str], elements: list) -> None:
        self.train = TrainRun(table, profile, results, passthrough, elements)

    def __call__(self) -> int:
        import logging

        from advlit.reproduction.prepare import build_stages

        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        logging.getLogger("advlit").setLevel(logging.INFO)  # what it makes and loads, in the job's log

        for index in range(len(self.train.elements)):
            found = self.train.command(index)
            if found is not None:  # the flags after "python -m advlit fit", on one device
                build_stages([*found[0][4:], "--trainer.devices", "1", "--trainer.strategy", "auto"])
        return 0

    def checkpoint(self):
        import submitit

        return submitit.helpers.DelayedSubmission(self)


def submit(
    table: int | str, profile: str, results: Path, passthrough: list[str], seeds: list[int], only: list[str] | None,
    settings: SlurmSettings,
) -> dict:  # fmt: skip
    """Submit the preparing job and the array that depends on it; record and return the submission."""
    import submitit

    elements = array_elements(table, profile, seeds, only)
    flags = [*passthrough, *settings.device_flags()]
    folder = results / "slurm" / "logs"
    prepare_exec = submitit.AutoExecutor(folder=folder, cluster="slurm")
    prepare_exec.update_parameters(name=f"advlit-t{table}-prepare", **settings.job_parameters(training=False))
    prepare_job = prepare_exec.submit(Prepare(table, profile, str(results), flags, elements))
    train_exec = submitit.AutoExecutor(folder=folder, cluster="slurm")
    params = settings.job_parameters(training=True)
    params["slurm_additional_parameters"] = {**params["slurm_additional_parameters"],
                                             "dependency": f"afterok:{prepare_job.job_id}"}  # fmt: skip
    train_exec.update_parameters(name=f"advlit-t{table}", slurm_array_parallelism=settings.array_parallelism,
                                 **params)  # fmt: skip
    runner = TrainRun(table, profile, str(results), flags, elements)
    jobs = train_exec.map_array(runner, list(range(len(elements))))
    state = {"table": table, "profile": profile, "logs": str(folder), "prepare": prepare_job.job_id,
             "jobs": [job.job_id for job in jobs], "settings": asdict(settings),
             "elements": [[seed, run.table, run.name] for seed, run in elements]}  # fmt: skip
    path = state_path(results, table)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2) + "\n")
    return state


def status_lines(results: Path, table: int | str, job_state=None) -> list[str]:
    """One line per run of the recorded submission: done, running, failed, or waiting, from its
    metrics.json and its job's SLURM state (``job_state(job_id, logs) -> str``, submitit's by default)."""
    path = state_path(results, table)
    if not path.exists():
        raise ConfigError(f"no SLURM submission of table {table} recorded in {path}; submit one first")
    state = json.loads(path.read_text())
    job_state = job_state or _submitit_state
    lines, counts = [], {}
    for (seed, run_table, name), job_id in zip(state["elements"], state["jobs"], strict=True):
        run = Run(run_table, name, ())
        done = (run_folder(seed_folder(results, seed), run) / "metrics.json").exists()
        slurm = job_state(job_id, state["logs"])
        word = "done" if done else _word(slurm)
        counts[word] = counts.get(word, 0) + 1
        lines.append(f"{label(seed, run)}: {word} (job {job_id}, {slurm})")
    summary = ", ".join(f"{n} {w}" for w, n in sorted(counts.items()))
    return [*lines, f"table {table}: {summary}; logs in {state['logs']}"]


def _word(slurm_state: str) -> str:
    state = slurm_state.upper()
    if state in ("RUNNING", "COMPLETING"):
        return "running"
    if state in ("PENDING", "REQUEUED", "CONFIGURING", "RESIZING", "SUSPENDED", "UNKNOWN"):
        return "waiting"
    if state == "COMPLETED":
        return "finished without metrics.json"
    return "failed"


def _submitit_state(job_id: str, logs: str) -> str:
    """The job's state from sacct (submitit); from squeue where the cluster keeps no accounting."""
    import submitit

    state = submitit.SlurmJob(folder=logs, job_id=job_id).state
    if state == "UNKNOWN":
        out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True).stdout.split()
        state = out[0] if out else "UNKNOWN"
    return state


def settings_from(flags: dict[str, str]) -> SlurmSettings:
    """:class:`SlurmSettings` from ``--slurm.<name> value`` pairs; an unknown name is a ConfigError."""
    fields = SlurmSettings.__dataclass_fields__
    values = {}
    for name, raw in flags.items():
        if name not in fields:
            raise ConfigError(f"--slurm.{name} is unknown; choose among {', '.join('--slurm.' + f for f in fields)}")
        kind = fields[name].type
        try:
            values[name] = raw if "str" in str(kind) else int(raw)
        except ValueError:
            raise ConfigError(f"--slurm.{name}={raw!r} must be a whole number") from None
    return SlurmSettings(**values)


def split_slurm_flags(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """``--slurm.<name> value`` (or ``=value``) pairs out of ``argv``, and the rest."""
    found, rest, i = {}, [], 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--slurm."):
            name, _, value = arg[len("--slurm.") :].partition("=")
            if not value:
                if i + 1 >= len(argv):
                    raise ConfigError(f"{arg} needs a value")
                value, i = argv[i + 1], i + 1
            found[name] = value
        else:
            rest.append(arg)
        i += 1
    return found, rest


def check_sbatch() -> None:
    """A ConfigError when this machine cannot submit SLURM jobs."""
    from shutil import which

    if which("sbatch") is None:
        raise ConfigError("--launcher slurm needs sbatch on this machine (a SLURM login node)")
