"""The frontier study in the report (``advlit reproduce --table frontier``): does adversarial training
survive the stronger transfer attacks of later work? Three defenders against each attacker's attacks, over the seeds,
each attack beside its matched noise, and the verdict on the paper's finding (d) there."""

import statistics
from pathlib import Path

from advlit.reproduction.report_runs import load_runs
from advlit.reproduction.report_seeds import seed_evidence, seed_folders, spread
from advlit.reproduction.report_tables import markdown
from advlit.reproduction.reproduce import FRONTIER, FRONTIER_RUNS

DEFENDERS = {"clean": "undefended", "fgsm_jsma_cw": "FGSM+JSMA+C&W",
             "fgsm_jsma_cw_ensemble": "FGSM+JSMA+C&W, ensemble adversarial training"}  # fmt: skip
ROBUST = 0.90  # finding (d)'s bar (our reading of "robust to all three"), applied to every attack here
PAPER_ATTACKS = ("fgsm", "jsma", "cw")
NAMES = {"fgsm": "FGSM", "jsma": "JSMA", "cw": "C&W", "mifgsm": "MI-FGSM", "di_fgsm": "DI-FGSM", "ti_fgsm": "TI-FGSM"}


def runs_by_seed(folder: Path, profile: str) -> dict[int, dict[str, dict | None]]:
    """Seed -> {frontier run name -> metrics.json or None}, for the seeds with any frontier run."""
    found = {}
    for seed, sub in seed_folders(folder).items():
        runs = load_runs(sub, FRONTIER, profile)
        if any(runs.values()):
            found[seed] = runs
    return found


def attacks_and_attackers(by_seed: dict[int, dict]) -> tuple[list[str], list[str]]:
    """The attacks and attackers of the runs, in the order the first finished run lists them."""
    rec = next(r for runs in by_seed.values() for r in runs.values() if r)
    return list(rec.get("attacks", {})), list(rec.get("attackers", {}))


def medians(by_seed: dict[int, dict], run: str, key: str) -> list[float]:
    """The run's window median of ``key`` (``A/di_fgsm``, ``A/di_fgsm_noise``, ``clean``) on every seed that has it."""
    return [rec["median"][key] for runs in by_seed.values() if (rec := runs.get(run)) and key in rec["median"]]


def cell(values: list[float], noise: list[float]) -> str:
    """``mean +- std (n) (gap g)`` in percent: each seed's window median, over the seeds, and the mean
    of attack minus matched noise."""
    if not values:
        return "missing"
    gap = f" (gap {100 * (statistics.mean(values) - statistics.mean(noise)):+.2f})" if len(noise) == len(values) else ""
    return spread(values) + gap


def table_rows(by_seed: dict[int, dict]) -> tuple[list[str], list[list[str]]]:
    """One row per (defender, attacker), one column per attack, plus clean accuracy."""
    attacks, attackers = attacks_and_attackers(by_seed)
    header = ["defender", "attacker", "clean", *(NAMES.get(a, a) for a in attacks)]
    rows = []
    for run in FRONTIER_RUNS:
        clean = cell(medians(by_seed, run, "clean"), [])
        for name in attackers:
            rows.append([DEFENDERS[run], name, clean] + [
                cell(medians(by_seed, run, f"{name}/{a}"), medians(by_seed, run, f"{name}/{a}_noise")) for a in attacks
            ])  # fmt: skip
            clean = ""
    return header, rows


def robustness_verdict(by_seed: dict[int, dict], run: str) -> tuple[str, str]:
    """``(verdict, evidence)`` of "``run`` stays >= 90% against every attack of every attacker".

    Holds where every seed has every set at or above the bar; does not hold where some set is under
    it on every seed (named); not judged where a set was not scored on some seed (named); within seed
    noise where seeds disagree.
    """
    attacks, attackers = attacks_and_attackers(by_seed)
    seeds = [s for s, runs in by_seed.items() if runs.get(run)]
    if not seeds:
        return "not run", "no run"
    keys = [f"{n}/{a}" for n in attackers for a in attacks]
    scored = {s: by_seed[s][run]["median"] for s in seeds}
    missing = [k for k in keys if any(k not in scored[s] for s in seeds)]
    under = {s: [k for k in keys if k in scored[s] and scored[s][k] < ROBUST] for s in seeds}
    always = [k for k in keys if all(k in under[s] for s in seeds)]
    sometimes = sorted({k for s in seeds for k in under[s]} - set(always))
    if always:
        new = [k for k in always if k.split("/")[1] not in PAPER_ATTACKS]
        verdict = f"does not hold: under {100 * ROBUST:.0f}% on {', '.join(always)}"
        verdict += f" ({len(new)} of them MI-, DI- or TI-FGSM)" if new else " (the paper's attacks only)"
        evidence = seed_evidence(len(seeds)) + (" on those" if len(seeds) > 1 and sometimes else "")
        return verdict, evidence + (f"; {', '.join(sometimes)} within seed noise" if sometimes else "")
    if missing:
        return f"not judged: {', '.join(missing)} not scored on every seed", seed_evidence(len(seeds))
    if sometimes:
        verdict = f"within seed noise: {', '.join(sometimes)} under {100 * ROBUST:.0f}% on some seeds"
        return verdict, seed_evidence(len(seeds), agree=False)
    return f"holds: every set at or above {100 * ROBUST:.0f}%", seed_evidence(len(seeds))


def section(folder: Path, profile: str) -> list[str]:
    """The report's frontier section (empty when no frontier run has finished)."""
    by_seed = runs_by_seed(folder, profile)
    if not by_seed:
        return []
    header, rows = table_rows(by_seed)
    verdicts = [[DEFENDERS[run], *robustness_verdict(by_seed, run)] for run in FRONTIER_RUNS if run != "clean"]
    return [
        "## Beyond the paper: adversarial training against stronger transfer attacks", "",
        f"`advlit reproduce --table frontier` (`configs/transfer_frontier.yaml`), seeds {sorted(by_seed)}. Each cell: "
        "window median in percent, mean ± std (n seeds), and the gap: the attack minus its matched "
        "noise (negative: the attack transfers beyond what noise of its budget costs). Attacker E is an ensemble "
        "that holds A's network and two more.", "",
        markdown(header, rows), "",
        f"Finding (d) at the frontier (our reading): the adversarially trained defender stays at or above "
        f"{100 * ROBUST:.0f}% against every attack of every attacker.", "",
        markdown(["defender", "verdict", "evidence"], verdicts), "",
    ]  # fmt: skip
