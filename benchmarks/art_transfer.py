r"""Do ART's JSMA and C&W transfer as ours do? Both made on the same attacker network for the same
test images, scored on the same defenders: a test of "a weaker implementation in the paper" as a
cause of the gap between our Table 4 and the paper's (docs/results.md). The paper names no library;
ART is our guess from its wording (docs/results.md says why).

Not part of the package: ART is installed in a scratch folder, for example

    pip install --target /tmp/reflibs adversarial-robustness-toolbox scipy scikit-learn
    PYTHONPATH=/tmp/reflibs:. python benchmarks/art_transfer.py --data_dir ../shared/data \
        --attacker $ADVLIT_CACHE/surrogates/attacker-lenet5-<key>.pt \
        --defenders "M'=results/paper/table4/clean/checkpoints/epoch=49-step=23450.ckpt" --images 1000

``--attacker`` is a cached surrogate; a defender is a Lightning checkpoint of a run (its last
epoch's weights, not the window's median).
"""

import argparse
import time
from pathlib import Path

import torch
import yaml

from advlit.attacks import build_attack, run_attack
from advlit.bench.attacks import perturbation_stats
from advlit.bench.fragility import accuracy
from advlit.data import load_mnist
from advlit.models import Classifier
from advlit.study.surrogate import cached_network
from benchmarks.reference_attacks import art_attack

PAPER_PROFILE = Path(__file__).resolve().parent.parent / "configs" / "profiles" / "paper.yaml"
PAPER_CW = yaml.safe_load(PAPER_PROFILE.read_text())["data"]["attack_params"]["cw"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--attacker", required=True)
    parser.add_argument("--defenders", nargs="+", required=True, help="NAME=CHECKPOINT")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x, y = load_mnist(args.data_dir, train=False)
    x, y = x[: args.images], y[: args.images]
    attacker = cached_network(args.attacker)
    defenders = {name: Classifier.load_from_checkpoint(path, map_location="cpu").net.eval()
                 for name, path in (d.split("=", 1) for d in args.defenders)}  # fmt: skip
    makers = {
        "advlit FGSM eps 0.2": lambda: run_attack(build_attack("fgsm"), attacker, x, y, 100, False),
        "advlit JSMA (paper profile)": lambda: run_attack(build_attack("jsma"), attacker, x, y, 100, False),
        "ART SaliencyMapMethod theta 1 gamma 0.2": lambda: art_attack(
            "SaliencyMapMethod", attacker, 100, theta=1.0, gamma=0.2
        )(x, y),
        "advlit C&W kappa 5 (paper profile)": lambda: run_attack(
            build_attack("cw", **PAPER_CW), attacker, x, y, 100, False
        ),
        "ART CarliniL2Method confidence 5, defaults": lambda: art_attack(
            "CarliniL2Method", attacker, 100, confidence=5.0
        )(x, y),
    }
    names = list(defenders)
    print(f"\n{args.images} test images; accuracy in % of each defender (last-epoch weights)\n")
    print("| attack | s | white-box success | unchanged | mean L0 | mean L2 | " + " | ".join(names) + " |")
    print("|---|---:|---:|---:|---:|---:|" + "---:|" * len(names))
    print("| clean | | | | | | " + " | ".join(f"{100 * accuracy(defenders[n], x, y):.1f}" for n in names) + " |")
    for label, make in makers.items():
        start = time.perf_counter()
        x_adv = make().float()
        seconds = time.perf_counter() - start
        stats = perturbation_stats(attacker, x, x_adv, y)
        unchanged = 100 * ((x_adv - x).flatten(1).abs().amax(1) == 0).float().mean().item()
        acc = [100 * accuracy(defenders[n], x_adv, y) for n in names]
        print(f"| {label} | {seconds:.0f} | {100 * stats['success']:.1f}% | {unchanged:.1f}% | {stats['l0']:.1f} | "
              f"{stats['l2']:.2f} | " + " | ".join(f"{a:.1f}" for a in acc) + " |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
