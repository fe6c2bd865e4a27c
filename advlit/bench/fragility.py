"""Noise fragility: which part of the augmentation makes a network fragile to random noise?

``python -m advlit.bench.fragility ablation --data_dir ../shared/data`` trains LeNet5 once per augmentation
variant (none, all of ours, each part alone, rotation and translation with bilinear interpolation)
and prints its test accuracy clean and under random noise of the attacks' budgets: sign noise
(L_inf 0.2, FGSM's), salt noise (k pixels set to 1, as JSMA sets them) and Gaussian noise of a
fixed L2. ``python -m advlit.bench.fragility networks --networks A=FILE ...`` scores cached surrogate
files (``$ADVLIT_CACHE/surrogates/*.pt``) the same way. Printed as markdown, never asserted.
"""

import sys
import tempfile
import time

import torch

from advlit.data import Augment, load_mnist
from advlit.runtime.errors import ConfigError, MissingDataError
from advlit.runtime.quiet import quiet_third_party
from advlit.runtime.threads import cap_threads
from advlit.study import surrogate

VARIANTS: dict[str, Augment | None] = {
    "none": None,
    "all (ours)": Augment(),
    "rotation only": Augment(translate=0.0, erase_p=0.0),
    "translation only": Augment(degrees=0.0, erase_p=0.0),
    "erasing only": Augment(degrees=0.0, translate=0.0),
    "rotation + translation, bilinear": Augment(erase_p=0.0, interpolation="bilinear"),
}


def noise_sets(x: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """``x`` clean and under sign noise (L_inf 0.1/0.2/0.3), salt noise (20/50 pixels to 1) and
    Gaussian noise (L2 2 and 4), each image its own draw."""
    gen = torch.Generator().manual_seed(seed)
    n = len(x)

    def sign(eps: float) -> torch.Tensor:
        return (x + eps * (torch.randint(0, 2, x.shape, generator=gen).to(x.dtype) * 2 - 1)).clamp(0, 1)

    def salt(k: int) -> torch.Tensor:
        flat = x.flatten(1).clone()
        flat.scatter_(1, torch.rand(flat.shape, generator=gen).argsort(1)[:, :k], 1.0)
        return flat.view_as(x)

    def gauss(l2: float) -> torch.Tensor:
        d = torch.randn(x.shape, generator=gen)
        return (x + d / d.flatten(1).norm(dim=1).view(n, 1, 1, 1) * l2).clamp(0, 1)

    sets = {"clean": x, **{f"sign {e}": sign(e) for e in (0.1, 0.2, 0.3)}}
    sets |= {f"salt {k} px": salt(k) for k in (20, 50)}
    return sets | {f"gauss L2 {v:g}": gauss(v) for v in (2.0, 4.0)}


@torch.no_grad()
def accuracy(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    """Top-1 accuracy of ``net`` (eval mode) on ``(x, y)``."""
    net.eval()
    return sum(
        (net(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum().item() for i in range(0, len(x), batch)
    ) / len(x)


def table(nets: dict[str, torch.nn.Module], x: torch.Tensor, y: torch.Tensor, first: str) -> list[str]:
    """Markdown rows: one per network, one column per noise set (accuracy in %)."""
    sets = noise_sets(x)
    rows = [f"| {first} | " + " | ".join(sets) + " |", "|---|" + "---:|" * len(sets)]
    for name, net in nets.items():
        rows.append(f"| {name} | " + " | ".join(f"{100 * accuracy(net, s, y):.1f}" for s in sets.values()) + " |")
    return rows


def ablation(
    data_dir: str,
    train_images: int = 10_000,
    epochs: int = 10,
    lr: float = 1e-3,
    seed: int = 0,
    threads: int = 1,
    variants: list[str] | None = None,
) -> None:
    """Train LeNet5 per augmentation variant (first ``train_images`` images, ``epochs`` epochs at Adam
    ``lr``, batch 128; ``variants``: names from :data:`VARIANTS`, default all) and print its
    accuracy under each noise."""
    unknown = sorted(set(variants or []) - set(VARIANTS))
    if unknown:
        raise ConfigError(f"variants {unknown} are unknown; choose from {list(VARIANTS)}")
    quiet_third_party()
    cap_threads(threads)
    x, y = load_mnist(data_dir, train=True)
    test_x, test_y = load_mnist(data_dir, train=False)
    nets = {}
    for name, augmenter in ((k, v) for k, v in VARIANTS.items() if not variants or k in variants):
        spec = surrogate.SurrogateSpec(augment=augmenter is not None, seed=seed, epochs=epochs, lr=lr)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as cache:
            nets[name] = surrogate.load_or_train(
                spec, x[:train_images], y[:train_images], augmenter or Augment(), "fragility", cache, progress=False
            ).net
        print(f"trained {name!r} in {time.perf_counter() - start:.0f} s", flush=True)
    print(f"\nLeNet5, {train_images:,} training images, {epochs} epochs, Adam {lr:g}, seed {seed}; "
          f"{len(test_y):,} test images; accuracy in %\n")  # fmt: skip
    print("\n".join(table(nets, test_x, test_y, "augmentation")))


def networks(data_dir: str, networks: list[str], arch: str = "lenet5", threads: int = 1) -> None:
    """Print the accuracy under each noise of cached surrogates, given as ``NAME=FILE``."""
    quiet_third_party()
    cap_threads(threads)
    x, y = load_mnist(data_dir, train=False)
    nets = {name: surrogate.cached_network(path, arch) for name, _, path in (n.partition("=") for n in networks)}
    print("\n".join(table(nets, x, y, "network")))


def main() -> None:
    """Entry point of ``python -m advlit.bench.fragility``."""
    from jsonargparse import CLI

    try:
        CLI({"ablation": ablation, "networks": networks}, as_positional=False, allow_abbrev=False)
    except (ConfigError, MissingDataError, FileNotFoundError) as err:
        print(f"advlit.bench.fragility: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
