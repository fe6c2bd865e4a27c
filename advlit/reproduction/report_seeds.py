"""The report over several seeds (``advlit reproduce --seeds``): each cell as mean +- std (n), and
each finding's verdict per seed and on the mean medians."""

import statistics
from pathlib import Path

from advlit.reproduction.reproduce import seed_folder


def seed_folders(folder: Path) -> dict[int, Path]:
    """Seed -> folder of its runs: seed 0 is ``folder`` itself, seed k ``folder/seed<k>``."""
    found = {0: folder}
    for sub in folder.glob("seed*"):
        if sub.name[4:].isdigit() and (sub / "PROFILE").exists() and seed_folder(folder, int(sub.name[4:])) == sub:
            found[int(sub.name[4:])] = sub
    return dict(sorted(found.items()))


def mean_record(records: list[dict]) -> dict | None:
    """One record whose ``max`` and ``median`` are the means over ``records`` (keys all of them have);
    the rest (defender, attackers, window) from the first. None without records."""
    if not records:
        return None
    out = dict(records[0])
    for stat in ("max", "median"):
        keys = set.intersection(*(set(r[stat]) for r in records))
        out[stat] = {k: statistics.mean(r[stat][k] for r in records) for k in sorted(keys)}
    return out


def spread(values: list[float]) -> str:
    """``mean +- std (n)`` in percent, the sample standard deviation (n - 1); one value has none."""
    if len(values) == 1:
        return f"{100 * values[0]:.2f} (n=1)"
    return f"{100 * statistics.mean(values):.2f} ± {100 * statistics.stdev(values):.2f} (n={len(values)})"


def spread_rows(
    table: int, by_seed: dict[int, dict], paper: dict, mixes: list[str], sets: list[str], value, label
) -> tuple[list[str], list[list[str]]]:
    """Table ``table`` in the paper's layout with each cell ``mean +- std (n) [paper]`` over the seeds.

    ``by_seed``: seed -> {run name -> metrics.json or None}; ``value(rec, stat, set)`` reads a cell.
    """
    header = ["trained on"] + [f"{stat} {s}" for stat in ("max", "median") for s in sets]
    rows = []
    for mix in mixes:
        row = [label(mix)]
        for stat in ("max", "median"):
            for s in sets:
                values = [v for runs in by_seed.values() if (v := value(runs.get(mix), stat, s)) is not None]
                paper_value = paper.get((table, label(mix), stat, s))
                cell = spread(values) if values else "missing"
                row.append(cell if paper_value is None else f"{cell} [{paper_value:.2f}]")
        rows.append(row)
    return header, rows


FINDING_TABLES = (2, 4)  # the tables the findings read (Table 5 is their runs)


def finished_runs(tables: dict[int, dict]) -> set[tuple[int, str]]:
    """``(table, run name)`` of each run of :data:`FINDING_TABLES` with a metrics.json."""
    return {(t, name) for t, runs in tables.items() if t in FINDING_TABLES for name, rec in runs.items() if rec}


def complete_seeds(loaded_by_seed: dict[int, dict[int, dict]]) -> list[int]:
    """The seeds that have every run of the findings' tables that any seed has: a mean over them
    compares like with like."""
    every = set().union(*(finished_runs(tables) for tables in loaded_by_seed.values()))
    return sorted(k for k, tables in loaded_by_seed.items() if finished_runs(tables) == every)


def findings_rows(loaded_by_seed: dict[int, dict[int, dict]], findings) -> tuple[list[str], list[list[str]]]:
    """Each finding's verdict per seed, then on the mean medians over the seeds that have every run
    (a seed still running would otherwise make one finding compare means over different seeds)."""
    seeds = sorted(loaded_by_seed)
    per_seed = {k: findings(tables) for k, tables in loaded_by_seed.items()}
    complete = {k: loaded_by_seed[k] for k in complete_seeds(loaded_by_seed)}
    tables = {t for tables in complete.values() for t in tables}
    mean_tables = {
        t: {name: mean_record([r for tabs in complete.values() if (r := tabs.get(t, {}).get(name))])
            for name in {n for tabs in complete.values() for n in tabs.get(t, {})}}
        for t in tables
    }  # fmt: skip
    overall = findings(mean_tables)
    if not complete:
        mean_label = "mean (no seed has every run)"
    elif len(complete) == 1:
        mean_label = f"seed {next(iter(complete))} alone (the one with every run)"
    else:
        mean_label = f"mean of seeds {', '.join(map(str, complete))}"
    header = ["finding"] + [f"seed {k}" for k in seeds] + [mean_label]
    rows = []
    for i, (text, verdict, _) in enumerate(overall):
        rows.append([text.split(")")[0] + ")"] + [per_seed[k][i][1] for k in seeds] + [verdict])
    return header, rows


def seed_evidence(seeds: int, agree: bool = True) -> str:
    """How strong a verdict over ``seeds`` seeds is: one seed, several that agree, or several that disagree."""
    if seeds == 1:
        return "1 seed: the seed spread is not measured at this profile"
    return f"{seeds} seeds, all agree" if agree else f"{seeds} seeds disagree"


def findings_with_evidence(loaded_by_seed: dict[int, dict[int, dict]], findings) -> list[tuple[str, str, str, str]]:
    """Each finding as ``(finding, verdict, evidence, numbers)``: the verdict holds only where every
    seed that ran it agrees; seeds that disagree make it ``within seed noise``; one seed is said to
    be one seed (its spread unmeasured). ``numbers`` are the lowest seed's."""
    per_seed = {k: findings(tables) for k, tables in sorted(loaded_by_seed.items())}
    first = next(iter(per_seed.values()))
    out = []
    for i, (text, _, numbers) in enumerate(first):
        verdicts = [found[i][1] for found in per_seed.values() if found[i][1] != "not run"]
        if not verdicts:
            out.append((text, "not run", "no run", numbers))
        elif len(verdicts) == 1:
            out.append((text, verdicts[0], seed_evidence(1), numbers))
        elif len(set(verdicts)) == 1:
            out.append((text, verdicts[0], seed_evidence(len(verdicts)), numbers))
        else:
            counts = ", ".join(f"{verdicts.count(v)} {v}" for v in dict.fromkeys(verdicts))
            out.append((text, "within seed noise", f"{seed_evidence(len(verdicts), False)} ({counts})", numbers))
    return out
