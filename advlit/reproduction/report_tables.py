"""The report's tables: ours beside the paper, attacks beside their controls, robustness, set quality."""

from advlit.reproduction.report_runs import ATTACKS, LABELS, SETS, attacker_of, mix_label, value
from advlit.reproduction.reproduce import MIXES
from advlit.study.robustness import EIGHT_BIT_SUFFIX as EIGHT_BIT
from advlit.study.robustness import WHITEBOX, WORST
from advlit.study.transfer import NOISE_SUFFIX as NOISE


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
    header = ["trained on", "worst case (black-box)"]
    masking = [(attacker_of(r), r.get("gradient_masking", {})) for r in runs.values() if r]
    twins = {a for a in whitebox if any(f"{name}/{a}" in flags for name, flags in masking)}
    header += [f"white-box {a}" + (f" (black-box {a} on the same images)" if a in twins else "") for a in whitebox]
    header += [f"{a} / 8-bit" for a in eight_bit] + ["masking flags"]
    rows = []
    for mix in MIXES:
        rec = runs.get(mix)
        flags = [f"{n} ({100 * f['black_box_median']:.1f} < {100 * f['white_box_median']:.1f})"
                 for n, f in (rec or {}).get("gradient_masking", {}).items() if f["flag"]]  # fmt: skip
        row = [mix_label(mix), _pct(value(rec, "median", WORST))]
        row += [_whitebox_cell(rec, a) for a in whitebox]
        row += [f"{_pct(value(rec, 'median', a))} / {_pct(value(rec, 'median', a + EIGHT_BIT))}" for a in eight_bit]
        rows.append(row + ["; ".join(flags) or ("none" if rec else "-")])
    return header, rows


def _whitebox_cell(rec: dict | None, attack: str) -> str:
    """The white-box median, with the black-box median of the same attack on the same images (the
    white-box images, from the gradient-masking record) where the run has that twin."""
    whitebox = _pct((rec or {}).get("median", {}).get(f"{WHITEBOX}/{attack}"))
    twin = (rec or {}).get("gradient_masking", {}).get(f"{attacker_of(rec)}/{attack}") if rec else None
    return f"{whitebox} ({_pct(twin['black_box_median'])})" if twin else whitebox


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
