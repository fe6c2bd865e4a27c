"""``advlit report``: our tables beside the paper's, per-epoch plots and the findings check."""

import argparse
import csv
import json
import platform
import statistics
import sys
from importlib import resources
from pathlib import Path

from advlit.reproduction import report_seeds
from advlit.reproduction.reproduce import MIXES, PROFILES, grid, run_folder
from advlit.runtime.errors import ConfigError
from advlit.study.robustness import EIGHT_BIT_SUFFIX as EIGHT_BIT
from advlit.study.robustness import WHITEBOX, WORST
from advlit.study.transfer import NOISE_SUFFIX as NOISE

SETS = ["clean", "fgsm", "jsma", "cw"]
ATTACKS = ["fgsm", "jsma", "cw"]
LABELS = {"clean": "Clean", "fgsm": "FGSM", "jsma": "JSMA", "cw": "C&W"}


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
    """metrics.json of every run of a Table 2, 3 or 4 by run name; None where it is missing."""
    runs = {}
    for run in grid(table, profile):
        path = run_folder(results, run) / "metrics.json"
        runs[run.name] = read_metrics(path) if path.exists() else None
    return runs


REQUIRED = ("window", "max", "median", "per_epoch", "defender", "attackers", "test_images")


def read_metrics(path: Path) -> dict | None:
    """A run's metrics.json, or None (shown as missing) with one line on stderr when it is not
    readable JSON of advlit's current layout."""
    try:
        record = json.loads(path.read_text())
        lacking = [key for key in REQUIRED if key not in record]
        if lacking:
            raise ValueError(f"lacks {', '.join(lacking)}")
        return record
    except (OSError, UnicodeDecodeError, ValueError) as err:
        print(f"advlit report: {path} is unreadable ({type(err).__name__}: {err}); shown as missing", file=sys.stderr)
        return None


def attacker_of(rec: dict, augment: bool | None = None) -> str | None:
    """The name of the run's attacker trained with ``augment`` (None: the defender's own choice)."""
    augment = rec["defender"]["augment"] if augment is None else augment
    return next((n for n, a in rec.get("attackers", {}).items() if a["spec"]["augment"] == augment), None)


def value(rec: dict | None, stat: str, test_set: str, augment: bool | None = None) -> float | None:
    """A run's ``stat`` on ``clean`` or on an attack's set (``fgsm_noise`` for its control) of the
    attacker trained with ``augment`` (None: the same augmentation as the defender)."""
    if rec is None:
        return None
    if test_set == "clean":
        return rec[stat].get("clean")
    name = attacker_of(rec, augment)
    return None if name is None else rec[stat].get(f"{name}/{test_set}")


def cell(ours: float | None, paper: float | None) -> str:
    """``ours (paper)`` in percent; a missing run shows as ``missing``, never as zero."""
    left = "missing" if ours is None else f"{100 * ours:.2f}"
    return left if paper is None else f"{left} ({paper:.2f})"


def table_rows(table: int, runs: dict, paper: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one table in the paper's layout, each cell ``ours (paper)``.

    ``runs``: run name -> metrics.json; for Table 5, ``{"M": Table 2 runs, "M'": Table 4 runs}``.
    """
    if table == 5:
        header = ["trained on", "defender"] + [f"{a} {LABELS[s]}" for a in ("A", "A'") for s in ATTACKS]
        rows = []
        for mix in MIXES:
            for defender in ("M", "M'"):
                row = [mix_label(mix), defender]
                for attacker, augment in (("A", True), ("A'", False)):
                    for s in ATTACKS:
                        ours = value(runs[defender].get(mix), "median", s, augment)
                        row.append(cell(ours, paper.get((5, mix_label(mix), defender, attacker, s))))
                rows.append(row)
        return header, rows
    header = ["trained on"] + [f"{stat} {LABELS[s]}" for stat in ("max", "median") for s in SETS]
    rows = []
    for mix in MIXES:
        row = [mix_label(mix)]
        for stat in ("max", "median"):
            for s in SETS:
                row.append(cell(value(runs.get(mix), stat, s), paper.get((table, mix_label(mix), stat, s))))
        rows.append(row)
    return header, rows


def attack_sets(runs: dict) -> list[str]:
    """The attacks scored in these runs (the paper's three first, then any other, such as jsma_pairs)."""
    names = {
        k.split("/")[1] for r in runs.values() if r for k in r["median"] if "/" in k and k.split("/")[0] != WHITEBOX
    }
    found = sorted(n for n in names if not n.endswith(("_noise", EIGHT_BIT)) and n != WORST)
    return [a for a in ATTACKS if a in found] + [a for a in found if a not in ATTACKS]


def control_rows(runs: dict) -> tuple[list[str], list[list[str]]]:
    """Median accuracy under each attack beside its matched noise, and the defender's largest
    predicted-class share on the attack's set at the last epoch (a collapse to one class shows)."""
    attacks = attack_sets(runs)
    header = ["trained on"] + [f"{a} {h}" for a in attacks for h in ("attack", "noise", "gap", "top class")]
    rows = []
    for mix in MIXES:
        rec, row = runs.get(mix), [mix_label(mix)]
        for a in attacks:
            atk, noise = value(rec, "median", a), value(rec, "median", f"{a}_noise")
            gap = None if atk is None or noise is None else atk - noise
            hist = (rec or {}).get("predicted_classes_last_epoch", {}).get(f"{attacker_of(rec)}/{a}") if rec else None
            top = f"{max(hist) / sum(hist):.0%} '{hist.index(max(hist))}'" if hist else "-"
            row += [_pct(atk), _pct(noise), "-" if gap is None else f"{100 * gap:+.1f}", top]
        rows.append(row)
    return header, rows


def robustness_rows(runs: dict) -> tuple[list[str], list[list[str]]] | None:
    """Median accuracy under the worst case per image over the attacker's sets, and under the
    white-box attacks on the defender itself, with the gradient-masking flags; None when no run
    recorded them (runs made before advlit scored them)."""
    whitebox = sorted(
        {k.split("/")[1] for r in runs.values() if r for k in r["median"] if k.startswith(WHITEBOX + "/")}
    )
    if not whitebox and not any(value(r, "median", WORST) is not None for r in runs.values()):
        return None
    eight_bit = [
        a for a in attack_sets(runs) if any(value(r, "median", a + EIGHT_BIT) is not None for r in runs.values())
    ]
    header = ["trained on", "worst case (black-box)"] + [f"white-box {a}" for a in whitebox]
    header += [f"{a} / 8-bit" for a in eight_bit] + ["masking flags"]
    rows = []
    for mix in MIXES:
        rec = runs.get(mix)
        flags = [f"{n} ({100 * f['black_box_median']:.1f} < {100 * f['white_box_median']:.1f})"
                 for n, f in (rec or {}).get("gradient_masking", {}).items() if f["flag"]]  # fmt: skip
        row = [mix_label(mix), _pct(value(rec, "median", WORST))]
        row += [_pct((rec or {}).get("median", {}).get(f"{WHITEBOX}/{a}")) for a in whitebox]
        row += [f"{_pct(value(rec, 'median', a))} / {_pct(value(rec, 'median', a + EIGHT_BIT))}" for a in eight_bit]
        rows.append(row + ["; ".join(flags) or ("none" if rec else "-")])
    return header, rows


def quality_rows(runs: dict) -> tuple[list[str], list[list[str]]]:
    """Each set's quality on the network that made it: success, and L0/L2/L_inf over its successes;
    ``budget``: the mean over every changed image, what its matched-noise control spends too."""
    header = ["set", "white-box success", "mean L0", "mean L2", "mean L_inf", "median L2", "unchanged",
              "budget L0", "budget L2", "budget L_inf"]  # fmt: skip
    seen: dict[str, dict] = {}
    for rec in runs.values():
        for name, q in (rec or {}).get("set_quality", {}).items():
            if name not in seen or ("budget" in q and "budget" not in seen[name]):
                seen[name] = q  # the first run that holds the set, preferring one that records its budget
    rows = []
    for name, q in sorted(seen.items()):
        budget = q.get("budget") or {}
        rows.append([name, f"{q['success']:.1%}", _num(q["l0"]["mean"], 1), _num(q["l2"]["mean"], 2),
                     _num(q["linf"]["mean"], 3), _num(q["l2"]["median"], 2), f"{q['unchanged']:.1%}",
                     _num(budget.get("l0"), 1), _num(budget.get("l2"), 2), _num(budget.get("linf"), 3)])  # fmt: skip
    return header, rows


def control_match_rows(runs: dict) -> tuple[list[str], list[list[str]]]:
    """What each matched-noise control spends beside its attack (mean over changed images), and by
    how much it misses the attack in each norm (control / attack - 1)."""
    header = ["set", "attack L0", "control L0", "attack L2", "control L2", "attack L_inf", "control L_inf",
              "miss L0", "miss L2", "miss L_inf"]  # fmt: skip
    budgets: dict[str, dict] = {}
    for rec in runs.values():
        for name, q in (rec or {}).get("set_quality", {}).items():
            if q.get("budget") and name not in budgets:
                budgets[name] = q["budget"]
    rows = []
    for name in sorted(budgets):
        control = budgets.get(name + NOISE)
        if name.endswith(NOISE) or control is None:
            continue
        attack = budgets[name]
        row = [name]
        for norm, digits in (("l0", 1), ("l2", 2), ("linf", 3)):
            row += [_num(attack.get(norm), digits), _num(control.get(norm), digits)]
        row += [_miss(control.get(norm), attack.get(norm)) for norm in ("l0", "l2", "linf")]
        rows.append(row)
    return header, rows


CONTROLS_TEXT = {
    1: "These runs used the first controls (metrics.json without `controls_version`): JSMA's, as many random "
    "pixels set to 1 as JSMA changed (L0 equal, L2 higher); C&W's, Gaussian noise over every pixel at C&W's L2 "
    "(L2 equal, L0 higher); FGSM's, a random sign per pixel at FGSM's L_inf.",
    2: "The JSMA control moves JSMA's own per-pixel changes to random pixels (L0, L1, L2 equal); the C&W control "
    "spreads Gaussian changes over as many random pixels (L0, L2 equal); the FGSM control is a random sign per "
    "pixel at FGSM's L_inf (L_inf equal; L0 and L2 lower where a pixel at 0 or 1 draws the sign that clipping "
    "cancels).",
}


def controls_text(runs: dict) -> str:
    """What the controls of these runs are, by the version their metrics.json records (none: the first)."""
    versions = sorted({rec.get("controls_version", 1) for rec in runs.values() if rec})
    return " ".join(CONTROLS_TEXT.get(v, f"Controls version {v}.") for v in versions) + (
        " The runs mix control versions: compare their gaps with care." if len(versions) > 1 else ""
    )


def _miss(control: float | None, attack: float | None) -> str:
    return "-" if control is None or not attack else f"{100 * (control / attack - 1):+.1f}%"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _num(v: float | None, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def markdown(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def median_of(runs: dict, name: str, s: str, augment: bool | None = None) -> float | None:
    """A run's median on ``s`` in percent (see :func:`value`); None when missing."""
    v = value(runs.get(name), "median", s, augment)
    return None if v is None else 100 * v


def findings(tables: dict[int, dict]) -> list[tuple[str, str, str]]:
    """The paper's five findings (a)-(e), in thresholds of our reading, and our matched-noise check (f),
    as (finding, verdict, deciding numbers); verdicts from our medians."""
    t2, t4 = tables.get(2, {}), tables.get(4, {})
    out = []

    def verdict(ok: bool | None) -> str:
        return "not run" if ok is None else "reproduced" if ok else "not reproduced"

    def have(*values) -> bool:
        return all(v is not None for v in values)

    a = [median_of(t2, "clean", s) for s in ATTACKS]
    out.append(("(a) black-box attacks cut an undefended LeNet5 (aug) to ~40-65% (we accept 35-70%)",
                verdict(all(35 <= v <= 70 for v in a) if have(*a) else None),
                ", ".join(f"{s} {v:.1f}%" for s, v in zip(ATTACKS, a, strict=True) if v is not None)))  # fmt: skip
    b = [median_of(t2, s, s) for s in ATTACKS]
    out.append(("(b) training on an attack makes the network robust to it (diagonal >= 95%)",
                verdict(all(v >= 95 for v in b) if have(*b) else None),
                ", ".join(f"{s}-trained on {s} {v:.1f}%"
                          for s, v in zip(ATTACKS, b, strict=True) if v is not None)))  # fmt: skip
    c_fgsm, c_clean = median_of(t2, "fgsm", "jsma"), median_of(t2, "clean", "jsma")
    out.append(("(c) it helps little against the others: FGSM-trained on JSMA within 10 points of undefended",
                verdict(abs(c_fgsm - c_clean) <= 10 if have(c_fgsm, c_clean) else None),
                f"FGSM-trained {c_fgsm:.1f}% vs undefended {c_clean:.1f}% on JSMA"
                if have(c_fgsm, c_clean) else ""))  # fmt: skip
    d = [median_of(t2, "fgsm_jsma_cw", s) for s in SETS]
    out.append(("(d) FGSM+JSMA+C&W training is robust to all three (>= 90%) with clean >= 99%",
                verdict(d[0] >= 99 and all(v >= 90 for v in d[1:]) if have(*d) else None),
                ", ".join(f"{s} {v:.1f}%" for s, v in zip(SETS, d, strict=True) if v is not None)))  # fmt: skip
    aug = [median_of(t2, "clean", s) for s in ATTACKS]
    noaug = [median_of(t4, "clean", s) for s in ATTACKS]
    matched = [median_of(t2, "fgsm_jsma_cw", "fgsm", True), median_of(t4, "fgsm_jsma_cw", "fgsm", False)]
    mismatched = [median_of(t2, "fgsm_jsma_cw", "fgsm", False), median_of(t4, "fgsm_jsma_cw", "fgsm", True)]
    e1 = statistics.mean(noaug) > statistics.mean(aug) if have(*aug, *noaug) else None
    e2 = min(matched) - max(mismatched) >= 5 if have(*matched, *mismatched) else None
    numbers = []
    if e1 is not None:
        numbers.append(
            f"undefended mean transfer accuracy no-aug {statistics.mean(noaug):.1f}% vs aug {statistics.mean(aug):.1f}%"
        )
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
    f_verdicts, f_numbers = [], []
    for table, runs in ((2, t2), (4, t4)):
        gaps = {s: (median_of(runs, "clean", s), median_of(runs, "clean", f"{s}_noise")) for s in ATTACKS}
        ok = None if not all(have(a, n) for a, n in gaps.values()) else all(a <= n - 10 for a, n in gaps.values())
        f_verdicts.append(f"Table {table} {verdict(ok)}")
        f_numbers += [f"T{table} {s} {a:.1f}% vs noise {n:.1f}%" for s, (a, n) in gaps.items() if have(a, n)]
    out.append(("(f, ours, not the paper's) each attack costs the undefended network >= 10 points more than "
                "its matched noise (the loss is transfer, not fragility)",
                "; ".join(f_verdicts), ", ".join(f_numbers)))  # fmt: skip
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
    cols = min(4, len(done))  # a table with fewer runs done gets a narrower figure, not empty panels
    rows = -(-len(done) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False, sharey=True)
    for ax, (name, rec) in zip(axes.flat, done.items(), strict=False):
        epochs = sorted(int(e) for e in rec["per_epoch"])
        attacker = attacker_of(rec)
        for i, s in enumerate(SETS):
            for suffix, style in (("", "-"), ("_noise", ":")):
                key = s if s == "clean" else f"{attacker}/{s}{suffix}"
                if s == "clean" and suffix:
                    continue
                ax.plot(epochs, [100 * rec["per_epoch"][str(e)].get(key, float("nan")) for e in epochs], style,
                        color=f"C{i}", label=LABELS[s] + (" noise" if suffix else ""))  # fmt: skip
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
    """Wall time per stage of each table: the time a cached stage (network, set) took to make,
    wherever it was made (``made_s``; shared by the table's runs, so counted once), and the rest
    (training, white-box scoring; stages of runs older than ``made_s``) summed over the runs."""
    lines = []
    for table, runs in sorted(tables.items()):
        records = [rec for rec in runs.values() if rec]
        made: dict[str, float] = {}
        for rec in records:
            for stage, seconds in rec.get("made_s", {}).items():
                if seconds is not None:
                    made[stage] = max(made.get(stage, 0.0), seconds)
        total = dict(made)
        for rec in records:
            for stage, seconds in rec.get("timings_s", {}).items():
                if stage not in made:
                    total[stage] = total.get(stage, 0.0) + seconds
        if total:
            lines.append(f"- Table {table}: " + ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in sorted(total.items())))
    return lines


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
            "hurts more than the same attack white-box on the same images (gradient masking). "
            "`x / 8-bit`: the set as made, and rounded to 8 bits (`transfer.quantize`).", "",
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
    base_seed, loaded = first_seed(folder, profile, sorted(set(tables) - {5} | ({2, 4} if 5 in tables else set())))
    if not loaded:
        raise ConfigError(f"no metrics.json found under {folder} for tables {tables}")
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
    parts += ["", "## Stage wall times", "", *timings(loaded), "", seeds(loaded), "",
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
        type=int,
        nargs="+",
        default=[2, 3, 4, 5],
        help="tables to show (Table 5 is built from the Table 2 and 4 runs)",
    )
    args = parser.parse_args(argv)
    try:
        path = report(args.results, args.profile, args.out or args.results / args.profile / "report", args.tables)
    except ConfigError as err:
        print(f"advlit report: error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"advlit report: wrote {path}")
