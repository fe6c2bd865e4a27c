"""``advlit report``: our tables beside the paper's, per-epoch plots and the findings check."""

import argparse
import csv
import json
import platform
import statistics
import sys
from importlib import resources
from pathlib import Path

from advlit.errors import ConfigError
from advlit.reproduce import MIXES, PROFILES, grid, run_folder

SETS = ["clean", "fgsm", "jsma", "cw"]
ATTACKS = ["fgsm", "jsma", "cw"]
LABELS = {"clean": "Clean", "fgsm": "FGSM", "jsma": "JSMA", "cw": "C&W"}
T5_CELLS = [("M", "A"), ("M", "A'"), ("M'", "A"), ("M'", "A'")]


def mix_label(mix: str) -> str:
    """``fgsm_jsma`` -> ``FGSM + JSMA``, the paper's name of a training mix."""
    return " + ".join(LABELS[part] for part in mix.split("_"))


def paper_numbers() -> dict[tuple, float]:
    """The paper's accuracies keyed by (table, mix label, statistic, test set[, defender, attacker])."""
    out = {}
    folder = resources.files("advlit") / "paper"
    with (folder / "paper_tables_2_3_4.csv").open() as f:
        for row in csv.DictReader(f):
            out[(int(row["table"][5:]), row["trained_on"], row["statistic"], row["test_set"])] = float(row["accuracy"])
    with (folder / "paper_table5.csv").open() as f:
        for row in csv.DictReader(f):
            out[(5, row["trained_on"], row["defender"], row["attacker"], row["test_set"])] = float(row["accuracy"])
    return out


def load_runs(results: Path, table: int, profile: str) -> dict[str, dict | None]:
    """metrics.json of every run of the table by run name; None where it is missing."""
    runs = {}
    for run in grid(table, profile):
        path = run_folder(results, run) / "metrics.json"
        runs[run.name] = json.loads(path.read_text()) if path.exists() else None
    return runs


def cell(ours: float | None, paper: float | None) -> str:
    """``ours (paper)`` in percent; a missing run shows as ``missing``, never as zero."""
    left = "missing" if ours is None else f"{100 * ours:.2f}"
    return left if paper is None else f"{left} ({paper:.2f})"


def table_rows(table: int, runs: dict[str, dict | None], paper: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one table in the paper's layout, each cell ``ours (paper)``."""
    if table == 5:
        header = ["trained on", "defender"] + [f"{a} {LABELS[s]}" for a in ("A", "A'") for s in ATTACKS]
        rows = []
        for mix in MIXES:
            for defender in ("M", "M'"):
                row = [mix_label(mix), defender]
                for attacker in ("A", "A'"):
                    name = f"{mix}-{'M' if defender == 'M' else 'Mp'}_{'A' if attacker == 'A' else 'Ap'}"
                    rec = runs.get(name)
                    for s in ATTACKS:
                        ours = rec["median"].get(s) if rec else None
                        row.append(cell(ours, paper.get((5, mix_label(mix), defender, attacker, s))))
                rows.append(row)
        return header, rows
    header = ["trained on"] + [f"{stat} {LABELS[s]}" for stat in ("max", "median") for s in SETS]
    rows = []
    for mix in MIXES:
        rec = runs.get(mix)
        row = [mix_label(mix)]
        for stat in ("max", "median"):
            for s in SETS:
                row.append(cell(rec[stat].get(s) if rec else None, paper.get((table, mix_label(mix), stat, s))))
        rows.append(row)
    return header, rows


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def median_of(runs: dict, name: str, s: str) -> float | None:
    rec = runs.get(name)
    return None if rec is None else 100 * rec["median"].get(s, float("nan"))


def findings(tables: dict[int, dict]) -> list[tuple[str, str, str]]:
    """The paper's five findings as (finding, verdict, deciding numbers); verdicts from our medians."""
    t2, t4, t5 = tables.get(2, {}), tables.get(4, {}), tables.get(5, {})
    out = []

    def verdict(ok: bool | None) -> str:
        return "not run" if ok is None else "reproduced" if ok else "not reproduced"

    def have(*values) -> bool:
        return all(v is not None for v in values)

    a = [median_of(t2, "clean", s) for s in ATTACKS]
    out.append(("(a) black-box attacks cut an undefended LeNet5 (aug) to ~40-65% (we accept 35-70%)",
                verdict(all(35 <= v <= 70 for v in a) if have(*a) else None),
                ", ".join(f"{s} {v:.1f}%" for s, v in zip(ATTACKS, a) if v is not None)))  # fmt: skip
    b = [median_of(t2, s, s) for s in ATTACKS]
    out.append(("(b) training on an attack makes the network robust to it (diagonal >= 95%)",
                verdict(all(v >= 95 for v in b) if have(*b) else None),
                ", ".join(f"{s}-trained on {s} {v:.1f}%" for s, v in zip(ATTACKS, b) if v is not None)))  # fmt: skip
    c_fgsm, c_clean = median_of(t2, "fgsm", "jsma"), median_of(t2, "clean", "jsma")
    out.append(("(c) it helps little against the others: FGSM-trained on JSMA within 10 points of undefended",
                verdict(abs(c_fgsm - c_clean) <= 10 if have(c_fgsm, c_clean) else None),
                f"FGSM-trained {c_fgsm:.1f}% vs undefended {c_clean:.1f}% on JSMA" if have(c_fgsm, c_clean) else ""))  # fmt: skip
    d = [median_of(t2, "fgsm_jsma_cw", s) for s in SETS]
    out.append(("(d) FGSM+JSMA+C&W training is robust to all three (>= 90%) with clean >= 99%",
                verdict(d[0] >= 99 and all(v >= 90 for v in d[1:]) if have(*d) else None),
                ", ".join(f"{s} {v:.1f}%" for s, v in zip(SETS, d) if v is not None)))  # fmt: skip
    aug = [median_of(t2, "clean", s) for s in ATTACKS]
    noaug = [median_of(t4, "clean", s) for s in ATTACKS]
    matched = [median_of(t5, n, "fgsm") for n in ("fgsm_jsma_cw-M_A", "fgsm_jsma_cw-Mp_Ap")]
    mismatched = [median_of(t5, n, "fgsm") for n in ("fgsm_jsma_cw-M_Ap", "fgsm_jsma_cw-Mp_A")]
    e1 = statistics.mean(noaug) > statistics.mean(aug) if have(*aug, *noaug) else None
    e2 = min(matched) - max(mismatched) >= 5 if have(*matched, *mismatched) else None
    numbers = []
    if e1 is not None:
        numbers.append(f"undefended mean transfer accuracy no-aug {statistics.mean(noaug):.1f}% vs aug {statistics.mean(aug):.1f}%")
    if e2 is not None:
        numbers.append(f"FGSM+JSMA+C&W on FGSM matched {', '.join(f'{v:.1f}%' for v in matched)} vs mismatched "
                       f"{', '.join(f'{v:.1f}%' for v in mismatched)}")  # fmt: skip
    if e1 is not None and e2 is None:
        e_verdict = f"Table 4 part {verdict(e1)}; Table 5 part not run"
    elif e2 is not None and e1 is None:
        e_verdict = f"Table 5 part {verdict(e2)}; Table 4 part not run"
    else:
        e_verdict = verdict(None if e1 is None else e1 and e2)
    out.append(("(e) without augmentation the undefended net resists transfer better (Table 4 vs 2), and an "
                "augmentation mismatch cuts FGSM accuracy (Table 5)", e_verdict, "; ".join(numbers)))  # fmt: skip
    return out


def plot_table(table: int, runs: dict[str, dict | None], folder: Path) -> list[Path]:
    """Figure 3/4-style PNGs: per-epoch accuracy on each test set, one panel per run."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("advlit report: matplotlib is not installed (pip install 'advlit[plots]'); no plots", file=sys.stderr)
        return []
    done = {name: rec for name, rec in runs.items() if rec}
    if not done:
        return []
    cols = 4
    rows = -(-len(done) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False, sharey=True)
    for ax, (name, rec) in zip(axes.flat, done.items()):
        epochs = sorted(int(e) for e in rec["per_epoch"])
        for s in SETS:
            ax.plot(epochs, [100 * rec["per_epoch"][str(e)].get(s, float("nan")) for e in epochs], label=LABELS[s])
        ax.axvspan(*rec["window"], color="0.9")
        ax.set_title(name if table == 5 else mix_label(name), fontsize=9)
        ax.set_xlabel("epoch")
    for ax in axes.flat[len(done) :]:
        ax.axis("off")
    axes[0, 0].set_ylabel("accuracy (%)")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    path = folder / f"table{table}_per_epoch.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return [path]


def timings(tables: dict[int, dict]) -> list[str]:
    """Wall time per stage summed over a table's runs (cached stages count once, where made)."""
    lines = []
    for table, runs in sorted(tables.items()):
        total: dict[str, float] = {}
        for rec in runs.values():
            for stage, seconds in (rec or {}).get("timings_s", {}).items():
                total[stage] = total.get(stage, 0.0) + seconds
        if total:
            lines.append(f"- Table {table}: " + ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in sorted(total.items())))
    return lines


def seeds(tables: dict[int, dict]) -> str:
    """The seeds of the runs, as the first finished run records them."""
    done = [r for runs in tables.values() for r in runs.values() if r]
    rec = next((r for r in done if "seed_everything" in r), done[0])
    d, a = rec.get("defender", {}), rec.get("attacker", {}).get("spec", {})
    return (f"Seeds: defender network {rec.get('seed_everything')} (seed_everything), defender data order and "
            f"augmentation {d.get('seed')}, defender's source network {d.get('source', {}).get('seed')}, "
            f"attacker's network {a.get('seed')}; device {rec.get('device')}.")  # fmt: skip


def report(results: Path, profile: str, out: Path, tables: list[int]) -> Path:
    """Write ``out``/results.md, one CSV per table and the plots; returns the markdown path."""
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
    loaded = {t: load_runs(folder, t, profile) for t in tables}
    loaded = {t: runs for t, runs in loaded.items() if any(runs.values())}
    if not loaded:
        raise ConfigError(f"no metrics.json found under {folder} for tables {tables}")
    parts = [f"# Results: profile `{profile}`", "",
             f"Each cell is `ours (paper)`, accuracy in percent on the black-box test sets; `missing` marks a run "
             f"without metrics.json. Made by `advlit report` from `{folder}`.", ""]  # fmt: skip
    for table, runs in sorted(loaded.items()):
        header, rows = table_rows(table, runs, paper)
        with open(out / f"table{table}.csv", "w", newline="") as f:
            csv.writer(f).writerows([header, *rows])
        any_run = next(r for r in runs.values() if r)
        title = {2: "LeNet5, augmentation", 3: "ResNet18, augmentation", 4: "LeNet5, no augmentation",
                 5: "LeNet5, defender M/M' x attacker A/A' (median; the paper does not say which statistic)"}[table]  # fmt: skip
        parts += [f"## Table {table}: {title}", "",
                  f"Window: epochs {any_run['window'][0]}-{any_run['window'][1]}; {any_run['test_images']} test images. "
                  f"Runs done: {sum(r is not None for r in runs.values())}/{len(runs)}.", "",
                  markdown(header, rows), ""]  # fmt: skip
        for png in plot_table(table, runs, out):
            parts += [f"![Table {table} per-epoch accuracy]({png.name})", ""]
    parts += ["## Findings", "", "| finding | verdict | numbers (our medians) |", "|---|---|---|"]
    parts += [f"| {f} | {v} | {n} |" for f, v, n in findings(loaded)]
    parts += ["", "## Stage wall times", "", *timings(loaded), "", seeds(loaded), "",
              f"Report machine: {platform.platform()}.", ""]  # fmt: skip
    path = out / "results.md"
    path.write_text("\n".join(parts))
    return path


def main(argv: list[str]) -> None:
    """Entry point of ``advlit report``."""
    parser = argparse.ArgumentParser(prog="advlit report", description=__doc__)
    parser.add_argument("--results", type=Path, default=Path("results"), help="folder given to advlit reproduce")
    parser.add_argument("--profile", default="paper", help=f"one of {PROFILES}")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: RESULTS/PROFILE/report)")
    parser.add_argument("--tables", type=int, nargs="+", default=[2, 3, 4, 5])
    args = parser.parse_args(argv)
    try:
        path = report(args.results, args.profile, args.out or args.results / args.profile / "report", args.tables)
    except ConfigError as err:
        print(f"advlit report: error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"advlit report: wrote {path}")
