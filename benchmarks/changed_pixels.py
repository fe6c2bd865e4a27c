"""How the L_inf attacks spend their budget: the figures behind the ``changes`` control kind.

On the committed paper-profile attacker A (``results/paper/networks``) and the first N MNIST test
images, it makes FGSM and the frontier's MI-, DI- and TI-FGSM (parameters from
configs/transfer_frontier.yaml) and prints, per attack, the share of changed pixels moved by the
full eps, the mean L2 over the changed images (the ``budget`` of advlit.study.quality.set_quality),
and the same for FGSM-style sign noise (+-eps on every pixel, clipped) on the same images: the
control an iterative attack would get without the ``changes`` kind (docs/study.md, "Matched-noise
controls"). Printed, never asserted.

    PYTHONPATH=. python benchmarks/changed_pixels.py --data_dir ../shared/data
"""

import argparse
from pathlib import Path

import torch
import yaml

from advlit.attacks import build_attacks, run_attack
from advlit.data import load_mnist
from advlit.runtime.provenance import machine
from advlit.study.controls import matched_noise
from advlit.study.quality import set_quality
from advlit.study.stored_networks import read_manifest
from advlit.study.surrogate import cached_network

ROOT = Path(__file__).resolve().parent.parent
FRONTIER = yaml.safe_load((ROOT / "configs" / "transfer_frontier.yaml").read_text())
ATTACKS = ["fgsm", "mifgsm", "ti_fgsm", "di_fgsm"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--networks", type=Path, default=ROOT / "results" / "paper" / "networks")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    (name,) = [n for n, e in read_manifest(args.networks).items()
               if e["spec"]["role"] == "attacker" and e["spec"]["augment"]]  # fmt: skip
    net = cached_network(args.networks / name)
    x, y = load_mnist(args.data_dir, train=False)
    x, y = x[: args.images], y[: args.images]
    attacks = build_attacks(ATTACKS, FRONTIER["data"]["attack_params"], "attacks")
    sign_noise = build_attacks(["fgsm"], {}, "attacks")["fgsm"]
    print(f"attacker A ({name}), {args.images} test images; {machine()}")
    print(f"{'attack':8s} {'at +-eps':>9s} {'L2':>6s} {'sign noise L2':>14s}")
    for attack_name, attack in attacks.items():
        x_adv = run_attack(attack, net, x, y, batch_size=100, progress=False)
        delta = (x_adv - x).flatten(1)
        changed = delta != 0
        share = ((delta.abs() >= attack.eps - 1e-4) & changed).sum().item() / max(changed.sum().item(), 1)
        l2 = set_quality(net, x, y, x_adv)["budget"]["l2"]  # what a matched-noise control spends
        noise_l2 = set_quality(net, x, y, matched_noise(sign_noise, x, x_adv))["budget"]["l2"]
        print(f"{attack_name:8s} {100 * share:8.0f}% {l2:6.2f} {noise_l2:14.2f}")


if __name__ == "__main__":
    main()
