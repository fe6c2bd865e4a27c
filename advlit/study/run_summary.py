"""What a run found, in a few lines: each attack set's window statistics beside its matched noise,
the worst case, the white-box scores and the gradient-masking flags; and the TensorBoard layout
that draws each attack on one chart with its control."""

from advlit.study.robustness import WHITEBOX, WORST

NOISE_SUFFIX = "_noise"


def summary_lines(record: dict) -> list[str]:
    """A plain-text table of a ``metrics.json`` record (accuracies in %, window median and max)."""
    median, best = record["median"], record["max"]
    start, end = record["window"]
    lines = [f"window epochs {start}-{end} (median / max, %); gap = attack - matched noise (median)",
             f"{'set':<24}{'median':>8}{'max':>8}{'noise':>8}{'gap':>8}  reading"]  # fmt: skip

    def row(name: str, noise: float | None = None, reading: str = "") -> str:
        cells = f"{name:<24}{100 * median[name]:>8.1f}{100 * best[name]:>8.1f}"
        if noise is not None:
            gap = median[name] - noise
            cells += f"{100 * noise:>8.1f}{100 * gap:>+8.1f}"
            reading = "transfer beyond noise" if gap <= -0.10 else "within 10 points of noise (fragility)"
        else:
            cells += f"{'':>8}{'':>8}"
        return f"{cells}  {reading}".rstrip()

    lines.append(row("clean"))
    for name in sorted(n for n in median if "/" in n and not n.startswith(f"{WHITEBOX}/")):
        if name.endswith(NOISE_SUFFIX) or name.endswith(f"/{WORST}"):
            continue
        lines.append(row(name, median.get(name + NOISE_SUFFIX)))
    for name in sorted(n for n in median if n.endswith(f"/{WORST}")):
        lines.append(row(name, reading="right under every attack of the attacker"))
    images = record.get("whitebox", {}).get("images")
    for name in sorted(n for n in median if n.startswith(f"{WHITEBOX}/")):
        lines.append(row(name, reading=f"white-box on the defended network, first {images} images"))
    for name, flag in sorted(record.get("gradient_masking", {}).items()):
        verdict = "FLAG: black-box hurts more than white-box" if flag["flag"] else "no masking flag"
        lines.append(f"{name}: {verdict} (same {images} images: black-box {100 * flag['black_box_median']:.1f}%, "
                     f"white-box {100 * flag['white_box_median']:.1f}%)")  # fmt: skip
    return lines


def custom_scalars_layout(attackers: list[str], attacks: list[str]) -> dict:
    """TensorBoard's Custom Scalars: per attacker, each attack on one chart with its matched noise."""
    return {
        f"attacker {a}: attack vs matched noise": {
            attack: ["Multiline", [f"val/acc/{a}/{attack}", f"val/acc/{a}/{attack}{NOISE_SUFFIX}", "val/acc/clean"]]
            for attack in attacks
        }
        for a in attackers
    }
