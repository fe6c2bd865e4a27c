"""Attack speed and strength on the current device, beside the paper's Table 1."""

import time

import torch
from torch.nn import functional as F

from advlit.attacks import build_attack, run_attack
from advlit.attacks.carlini_wagner import EFFICIENT_CW
from advlit.data import load_mnist
from advlit.data.batches import TensorBatches
from advlit.models import build_network
from advlit.runtime.devices import describe_device, pick_device, sync

PAPER_SECONDS = {  # Table 1: 60,000 images on one RTX 2080 Ti
    ("lenet5", "fgsm"): 48, ("lenet5", "jsma"): 2226, ("lenet5", "cw"): 8142,
    ("resnet18", "fgsm"): 66, ("resnet18", "jsma"): 9180, ("resnet18", "cw"): 49542,
}  # fmt: skip


def quick_train(arch: str, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int = 0) -> torch.nn.Module:
    """A plain-loop trained network (Adam 1e-3, no augmentation): the benchmark's victim."""
    torch.manual_seed(seed)
    net = build_network(arch).to(x.device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for epoch in range(epochs):
        for xb, yb in TensorBatches((x, y), 128, shuffle=True, seed=seed, epoch_fn=lambda e=epoch: e):
            loss = F.cross_entropy(net(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return net.eval()


def perturbation_stats(model: torch.nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor) -> dict:
    """White-box success (among correctly classified images) and mean L0/L2/L_inf of the successes."""
    with torch.no_grad():
        correct = model(x).argmax(1) == y
        fooled = (model(x_adv).argmax(1) != y) & correct
    diff = (x_adv - x).flatten(1)[fooled]
    return {
        "success": fooled.sum().item() / max(correct.sum().item(), 1),
        "l0": (diff != 0).sum(1).float().mean().item() if len(diff) else float("nan"),
        "l2": diff.norm(dim=1).mean().item() if len(diff) else float("nan"),
        "linf": diff.abs().amax(1).mean().item() if len(diff) else float("nan"),
    }


def attacks(
    data_dir: str,
    archs: list[str] = ["lenet5", "resnet18"],
    attacks: dict[str, dict] = {
        "fgsm": {},
        "mifgsm": {},
        "di_fgsm": {},
        "ti_fgsm": {},
        "pgd": {},
        "jsma": {},
        "jsma_pairs": {},
        "cw": EFFICIENT_CW,
    },
    images: int = 1000,
    batch_size: int = 1000,
    train_epochs: int = 2,
    train_images: int = 60_000,
    device: str = "auto",
) -> None:
    """Print images/s, projected 60k time beside Table 1, success and mean L0/L2/L_inf per attack.

    Args:
        data_dir: MNIST folder (the victim trains on its training set; test images are attacked).
        archs: networks to attack, each trained ``train_epochs`` epochs here first.
        attacks: registry name (``name:label`` to run one attack in several settings, such as
            ``cw:carlini: {}``) -> hyperparameters (empty: the code defaults).
        images: test images attacked per attack (the projection scales from these).
        batch_size: attack batch size.
        train_epochs: epochs of the victim's training.
        train_images: training images of the victim.
        device: cpu, cuda or auto.
    """
    dev = pick_device(device)
    x_train, y_train = (t[:train_images].to(dev) for t in load_mnist(data_dir, train=True))
    x, y = (t[:images].to(dev) for t in load_mnist(data_dir, train=False))
    print(f"device: {describe_device(dev)}; {images} test images, batch {batch_size}")
    print(f"{'model':9s} {'attack':40s} {'img/s':>8s} {'60k (s)':>9s} {'paper (s)':>9s} {'fwd/img':>8s} "
          f"{'success':>8s} {'L0':>6s} {'L2':>6s} {'Linf':>5s}")  # fmt: skip
    for arch in archs:
        model = quick_train(arch, x_train, y_train, train_epochs)
        passes = [0]
        model.register_forward_hook(lambda m, inputs, out, n=passes: n.__setitem__(0, n[0] + len(inputs[0])))
        for label, params in attacks.items():
            name = label.split(":")[0]
            attack = build_attack(name, **params)
            if dev.type == "cuda":
                run_attack(attack, model, x[:batch_size], y[:batch_size], batch_size, progress=False)  # warm-up
            sync(dev)
            passes[0], start = 0, time.perf_counter()
            x_adv = run_attack(attack, model, x, y, batch_size)
            sync(dev)
            seconds, per_image = time.perf_counter() - start, passes[0] / len(x)
            s = perturbation_stats(model, x, x_adv, y)
            paper = PAPER_SECONDS.get((arch, name), float("nan"))
            print(
                f"{arch:9s} {label:40s} {len(x) / seconds:8.1f} {seconds * 60_000 / len(x):9.1f} {paper:9.0f} "
                f"{per_image:8.0f} "
                f"{s['success']:8.1%} {s['l0']:6.1f} {s['l2']:6.2f} {s['linf']:5.2f}",
                flush=True,
            )
