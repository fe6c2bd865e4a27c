"""``advlit report``: our tables beside the paper's, per-epoch plots and the findings check."""

import argparse
import csv
import platform
import sys
from pathlib import Path

from advlit.reproduction import report_frontier, report_seeds
from advlit.reproduction.report_findings import findings
from advlit.reproduction.report_plots import plot_table
from advlit.reproduction.report_runs import SETS, load_runs, mix_label, paper_numbers, value
from advlit.reproduction.report_tables import (
    control_match_rows,
    control_rows,
    controls_text,
    markdown,
    quality_rows,
    robustness_rows,
    table_rows,
)
from advlit.reproduction.reproduce import FRONTIER, MIXES, PROFILES, TABLES, parse_table
from advlit.runtime.errors import ConfigError

__all__ = ["control_match_rows", "controls_text", "findings", "main", "report", "timings"]


def made_range(times: set[float]) -> str:
    """A cached stage's making time, or the range of its times and how many, where it was made more than once."""
    low, high = round(min(times)), round(max(times))
    if len(times) == 1:
        return f"{low} s"
    return f"{low} s (made {len(times)} times)" if low == high else f"{low}-{high} s (made {len(times)} times)"


def timings(tables: dict[int, dict]) -> list[str]:
    """Wall time per stage of each table: the time a cached stage (network, set) took to make,
    wherever it was made (``made_s``; shared by the table's runs, so counted once; a stage the runs
    record with different times was made more than once, and shows its range), and the rest
    (training, white-box scoring; stages of runs older than ``made_s``) summed over the runs."""
    lines = []
    for table, runs in sorted(tables.items()):
        records = [rec for rec in runs.values() if rec]
        made: dict[str, set[float]] = {}
        for rec in records:
            for stage, seconds in rec.get("made_s", {}).items():
                if seconds is not None:  # to the ms, as the note beside the cache entry keeps it
                    made.setdefault(stage, set()).add(round(seconds, 3))
        total = {stage: made_range(times) for stage, times in made.items()}
        summed: dict[str, float] = {}
        for rec in records:
            for stage, seconds in rec.get("timings_s", {}).items():
                if stage not in made:
                    summed[stage] = summed.get(stage, 0.0) + seconds
        total |= {stage: f"{seconds:.0f} s" for stage, seconds in summed.items()}
        if total:
            lines.append(f"- Table {table}: " + ", ".join(f"{STAGE_NAMES.get(k, k[:-2])} {v}"
                                                          for k, v in sorted(total.items())))  # fmt: skip
    done = [rec for runs in tables.values() for rec in runs.values() if rec]
    machines = sorted({machine_words(rec) for rec in done})
    lines += ["", "The attackers' networks and sets are shared by the tables (listed under each); a cached stage's "
              "time is that of the machine that made it, and a stage the table's runs record as made more than "
              "once (the cache made again) shows the range of its times. The runs were made on: "
              + "; ".join(machines) + "."]  # fmt: skip
    return lines


# ``training_s`` runs from the start of training to its end, so it holds the per-epoch white-box scoring
STAGE_NAMES = {"training_s": "training and scoring (white-box included)", "whitebox_s": "of which white-box"}


def machine_words(rec: dict) -> str:
    """``AMD EPYC (2 cores, AVX2 pinned, CPU offers avx2 avx512f), 1 thread(s), cpu`` from a run's
    provenance (``not recorded in metrics.json`` where it has none)."""
    machine = (rec.get("provenance") or {}).get("machine")
    if not machine:
        return "not recorded in metrics.json"
    gpu = f", GPU {machine['gpu']}" if machine.get("gpu") else ""
    pinned = " pinned" if machine.get("kernel_pins") else ""
    offers = f", CPU offers {' '.join(machine['cpu_extensions'])}" if machine.get("cpu_extensions") else ""
    kernels = f"{machine.get('cpu_capability')}{pinned}{offers}{gpu}"
    return (f"{machine.get('cpu')} ({machine.get('cores')} cores, {kernels}), "
            f"{rec.get('torch_threads', machine.get('torch_threads'))} thread(s), {rec.get('device')}")  # fmt: skip


def seeds(tables: dict[int, dict]) -> str:
    """The seeds of the runs, as the first finished run records them."""
    done = [r for runs in tables.values() for r in runs.values() if r]
    rec = next((r for r in done if "seed_everything" in r), done[0])
    d = rec.get("defender", {})
    attackers = ", ".join(
        f"{n} {a['spec']['seed']} (augment {a['spec']['augment']})" for n, a in rec.get("attackers", {}).items()
    )
    return (f"Seeds: defender network {rec.get('seed_everything')} (seed_everything), defender data order and "
            f"augmentation {d.get('seed')}, defender's source network {d.get('source', {}).get('seed')}, "
            f"attackers' networks {attackers}; device {rec.get('device')}.{commits(done)}")  # fmt: skip


def commits(done: list[dict]) -> str:
    """`` Code: <commit>[ (dirty)] ...`` over the runs that record their provenance."""
    seen = sorted(
        {
            (r["provenance"]["git_commit"] or "unknown")[:10] + (" (dirty)" if r["provenance"]["git_dirty"] else "")
            for r in done
            if r.get("provenance")
        }
    )
    return f" Code: {', '.join(seen)}." if seen else ""


def robustness_section(table: int, runs: dict) -> list[str]:
    """Markdown of the worst-case and white-box columns (empty for runs that lack them)."""
    rows = robustness_rows(runs)
    if rows is None:
        return []
    return [f"### Table {table}: worst case per image and white-box accuracy (median, %)", "",
            "`worst case`: an image counts only if the defender is right under every attack of the attacker. "
            "`white-box`: the attack run on the defender itself, first test images. A flag: a black-box attack "
            "hurts more than the same attack white-box on the same images (gradient masking)."
            + (" `x / 8-bit`: the set as made, and rounded to 8 bits (`transfer.quantize`)."
               if any(h.endswith("/ 8-bit") for h in rows[0]) else ""), "",
            markdown(*rows), ""]  # fmt: skip


def table_section(table: int, runs: dict, paper: dict, out: Path) -> list[str]:
    """Markdown of one table: ours beside the paper, then (Tables 2-4) controls, set quality, plots."""
    header, rows = table_rows(table, runs, paper)
    with open(out / f"table{table}.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    title = {2: "LeNet5, augmentation", 3: "ResNet18, augmentation", 4: "LeNet5, no augmentation",
             5: "LeNet5, defender M/M' x attacker A/A' (median; the paper does not say which statistic)",
             }[table]  # fmt: skip
    if table == 5:
        done = sum(r is not None for side in runs.values() for r in side.values())
        return [f"## Table {table}: {title}", "", f"From the Table 2 (M) and Table 4 (M') runs, each scored against "
                f"both attackers. Runs done: {done}/{2 * len(MIXES)}.", "", markdown(header, rows), ""]  # fmt: skip
    any_run = next(r for r in runs.values() if r)
    parts = [f"## Table {table}: {title}", "",
             f"Window: epochs {any_run['window'][0]}-{any_run['window'][1]}; {any_run['test_images']} test images. "
             f"Runs done: {sum(r is not None for r in runs.values())}/{len(runs)}.", "", markdown(header, rows), "",
             f"### Table {table}: attacks beside their matched noise (median, %)", "",
             "`gap` is attack minus noise: near 0 means the noise alone costs as much (fragility, not transfer). "
             "`top class`: the defender's largest predicted-class share on the attack's set at the last epoch.", "",
             markdown(*control_rows(runs)), "",
             *robustness_section(table, runs),
             f"### Table {table}: set quality (white-box, on the network that made the set)", "",
             "`mean L0/L2/L_inf` and `median L2`: over the images the set fools on that network (few, for a "
             "noise set); `budget`: over every changed image, what the matched-noise control spends too.", "",
             markdown(*quality_rows(runs)), "",
             f"### Table {table}: what each control matches (mean budget over changed images)", "",
             controls_text(runs), "",
             markdown(*control_match_rows(runs)), ""]  # fmt: skip
    for png in plot_table(table, runs, out):
        parts += [f"![Table {table} per-epoch accuracy]({png.name})", ""]
    return parts


def loaded_seed(folder: Path, profile: str, tables) -> dict[int, dict]:
    """Each table's runs (run name -> metrics.json or None) in one seed's ``folder``; tables without runs left out."""
    runs = {t: load_runs(folder, t, profile) for t in tables}
    return {t: r for t, r in runs.items() if any(r.values())}


def first_seed(folder: Path, profile: str, tables) -> tuple[int, dict[int, dict]]:
    """The lowest seed with runs and its runs: seed 0, or the first of ``--seeds 1 2`` run without it."""
    for seed, sub in report_seeds.seed_folders(folder).items():
        if loaded := loaded_seed(sub, profile, tables):
            return seed, loaded
    return 0, {}


def seeds_section(
    folder: Path, profile: str, tables: list[int], paper: dict, base: dict[int, dict], base_seed: int = 0
) -> list[str]:
    """Tables 2-4 over every seed with runs (mean +- std), and the findings per seed; empty for one seed."""
    loaded_by_seed = {base_seed: base}
    for seed, sub in report_seeds.seed_folders(folder).items():
        if seed != base_seed and (runs := loaded_seed(sub, profile, base)):
            loaded_by_seed[seed] = runs
    if len(loaded_by_seed) < 2:
        return []
    seeds = ", ".join(map(str, sorted(loaded_by_seed)))
    intro = (f"Every network reseeded per seed (`advlit reproduce --seeds`); the tables above: seed {base_seed}. "
             "std is the sample standard deviation (n - 1).")  # fmt: skip
    parts = [f"## Over seeds {seeds}: median and max, mean ± std (n) [paper]", "", intro, ""]
    for table in sorted(t for t in tables if t in base and t != 5):
        by_seed = {k: tabs.get(table, {}) for k, tabs in loaded_by_seed.items()}
        rows = report_seeds.spread_rows(table, by_seed, paper, MIXES, SETS, value, mix_label)
        parts += [f"### Table {table} over seeds", "", markdown(*rows), ""]
    parts += ["### Findings per seed", "", markdown(*report_seeds.findings_rows(loaded_by_seed, findings)), ""]
    return parts


def report(results: Path, profile: str, out: Path, tables: list[int | str]) -> Path:
    """Write ``out``/results.md, one CSV per table and the plots (and the frontier study's section,
    where ``frontier`` is among ``tables`` and has runs); returns the markdown path."""
    if profile not in PROFILES:
        raise ConfigError(f"profile {profile!r} is unknown; choose one of {PROFILES}")
    folder = results / profile
    marker = folder / "PROFILE"
    if not marker.exists():
        raise ConfigError(f"{folder} holds no advlit reproduce runs (no PROFILE file); run advlit reproduce first")
    if marker.read_text().strip() != profile:
        raise ConfigError(f"{folder} holds runs of profile {marker.read_text().strip()!r}, not {profile!r}")
    paper = paper_numbers()
    out.mkdir(parents=True, exist_ok=True)
    frontier = report_frontier.section(folder, profile) if FRONTIER in tables else []
    numbered = [t for t in tables if t != FRONTIER]
    base_seed, loaded = first_seed(folder, profile, sorted(set(numbered) - {5} | ({2, 4} if 5 in numbered else set())))
    if not loaded and not frontier:
        raise ConfigError(f"no metrics.json found under {folder} for tables {tables}")
    if not loaded:
        path = out / "results.md"
        path.write_text("\n".join([f"# Results: profile `{profile}`", "", *frontier]))
        return path
    which = f" (tables of seed {base_seed}, the lowest with runs)" if base_seed else ""
    parts = [f"# Results: profile `{profile}`", "",
             f"Each cell is `ours (paper)`, accuracy in percent on the black-box test sets of the attacker trained "
             f"like the defender (augmentation or not); `missing` marks a run without metrics.json. Made by "
             f"`advlit report` from `{folder}`{which}.", ""]  # fmt: skip
    shown = {t: loaded[t] for t in tables if t in loaded}
    if 5 in tables and (2 in loaded or 4 in loaded):
        shown[5] = {"M": loaded.get(2, {}), "M'": loaded.get(4, {})}
    for table, runs in sorted(shown.items()):
        parts += table_section(table, runs, paper, out)
    parts += seeds_section(folder, profile, tables, paper, loaded, base_seed)
    by_seed = {base_seed: loaded} | {
        seed: runs
        for seed, sub in report_seeds.seed_folders(folder).items()
        if seed != base_seed and (runs := loaded_seed(sub, profile, loaded))
    }
    parts += ["## Findings", "",
              "(a)-(e) are the paper's findings in thresholds of our reading (the paper states none); (f) is our "
              "own test. A verdict holds only where every seed agrees; where seeds disagree it is within seed "
              "noise; with one seed the spread is not measured.", "",
              f"| finding | verdict | evidence | numbers (seed {base_seed} medians) |",
              "|---|---|---|---|"]  # fmt: skip
    parts += [f"| {f} | {v} | {e} | {n} |" for f, v, e, n in report_seeds.findings_with_evidence(by_seed, findings)]
    parts += ["", *frontier, "## Stage wall times", "", *timings(loaded), "", seeds(loaded), "",
              f"Report machine: {platform.platform()}.", ""]  # fmt: skip
    path = out / "results.md"
    path.write_text("\n".join(parts))
    return path


def main(argv: list[str]) -> None:
    """Entry point of ``advlit report``."""
    parser = argparse.ArgumentParser(prog="advlit report", description=__doc__, allow_abbrev=False)
    parser.add_argument("--results", type=Path, default=Path("results"), help="folder given to advlit reproduce")
    parser.add_argument("--profile", default="paper", help=f"one of {PROFILES}")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: RESULTS/PROFILE/report)")
    parser.add_argument(
        "--tables",
        type=parse_table,
        nargs="+",
        default=TABLES,
        help=f"tables to show, of {TABLES} (Table 5 is built from the Table 2 and 4 runs)",
    )
    args = parser.parse_args(argv)
    try:
        path = report(args.results, args.profile, args.out or args.results / args.profile / "report", args.tables)
    except ConfigError as err:
        print(f"advlit report: error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"advlit report: wrote {path}")
