"""Figure 3/4-style per-epoch plots of a table's runs (attacks solid, controls dotted)."""

import sys
from pathlib import Path

from advlit.reproduction.report_runs import LABELS, SETS, attacker_of, mix_label


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
