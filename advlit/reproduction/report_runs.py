"""The report's inputs: each run's metrics.json, the paper's numbers, and a cell's value."""

import csv
import json
import sys
from importlib import resources
from pathlib import Path

from advlit.reproduction.reproduce import grid, run_folder

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


def load_runs(results: Path, table: int | str, profile: str) -> dict[str, dict | None]:
    """metrics.json of every run of a Table 2, 3 or 4 (or of the frontier) by run name; None where it is missing."""
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


def median_of(runs: dict, name: str, s: str, augment: bool | None = None) -> float | None:
    """A run's median on ``s`` in percent (see :func:`value`); None when missing."""
    v = value(runs.get(name), "median", s, augment)
    return None if v is None else 100 * v
