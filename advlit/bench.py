"""Speed figures, printed, never asserted: ``python -m advlit.bench train|attacks``."""

import time

import torch
from lightning.pytorch import Callback, Trainer
from torch.nn import functional as F

from advlit.data import Augment, MNISTDataModule, load_mnist
from advlit.data.batches import TensorBatches
from advlit.devices import describe_device, pick_device, sync  # noqa: F401 (re-exported for scripts)
from advlit.models import Classifier, build_network


def _mnist_or_random(data_dir: str | None, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    if data_dir:
        x, y = load_mnist(data_dir, train=True)
        return x[:n], y[:n]
    gen = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 28, 28, generator=gen), torch.randint(0, 10, (n,), generator=gen)


def bare_epoch(arch: str, x: torch.Tensor, y: torch.Tensor, batch_size: int, augment: bool) -> float:
    """Seconds for one epoch of a plain PyTorch loop over device tensors."""
    net = build_network(arch).to(x.device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    aug, gen = Augment(), torch.Generator(device=x.device).manual_seed(0)
    sync(x.device)
    start = time.perf_counter()
    for xb, yb in TensorBatches((x, y), batch_size, shuffle=True):
        if augment:
            xb = aug(xb, gen)
        loss = F.cross_entropy(net(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(x.device)
    return time.perf_counter() - start


class _EpochTimer(Callback):
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        sync(pl_module.device)
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        sync(pl_module.device)
        self.seconds = time.perf_counter() - self.start


class _FixedData(MNISTDataModule):
    """The DataModule over tensors set as attributes, so both loops see the same images."""

    def setup(self, stage: str) -> None:
        self.test_x, self.test_y = self.train_x[:1], self.train_y[:1]


def lightning_epoch(arch: str, x: torch.Tensor, y: torch.Tensor, batch_size: int, accelerator: str) -> float:
    """Seconds for one training epoch through advlit's Classifier and DataModule (augmentation on)."""
    timer = _EpochTimer()
    trainer = Trainer(
        accelerator=accelerator, devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        callbacks=[timer],
    )  # fmt: skip
    data = _FixedData(download=False, batch_size=batch_size, augment=True)
    data.train_x, data.train_y = x, y
    trainer.fit(Classifier(arch), data)
    return timer.seconds


def train(
    arch: str = "lenet5",
    data_dir: str | None = None,
    images: int = 60_000,
    batch_size: int = 128,
    repeats: int = 3,
    accelerator: str = "auto",
) -> None:
    """Print training samples per second: bare PyTorch loop vs advlit (Lightning + augmentation).

    Args:
        arch: lenet5 or resnet18.
        data_dir: MNIST folder; random pixels when not given.
        images: images per epoch.
        batch_size: training batch size.
        repeats: rounds; each round times every variant once, and the median is printed.
        accelerator: cpu, gpu or auto.
    """
    device = pick_device(accelerator)
    use_cuda = device.type == "cuda"
    x, y = _mnist_or_random(data_dir, images)
    x, y = x.to(device), y.to(device)
    print(f"device: {describe_device(device)}; {arch}, {len(x)} images, batch {batch_size}")
    rows = {
        "bare loop, no augmentation": lambda: bare_epoch(arch, x, y, batch_size, augment=False),
        "bare loop + augmentation": lambda: bare_epoch(arch, x, y, batch_size, augment=True),
        "advlit (Lightning + augmentation)": lambda: lightning_epoch(
            arch, x, y, batch_size, "gpu" if use_cuda else "cpu"
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(repeats):  # interleaved, so drifts of a shared machine hit every variant alike
        for name, fn in rows.items():
            times[name].append(fn())
    median = {name: sorted(ts)[len(ts) // 2] for name, ts in times.items()}
    base = median["bare loop, no augmentation"]
    print(f"{f'variant (median of {repeats})':36s} {'s/epoch':>8s} {'img/s':>9s} {'vs bare':>8s} {'60k epoch':>10s}")
    for name, seconds in median.items():
        print(
            f"{name:36s} {seconds:8.2f} {len(x) / seconds:9.0f} {seconds / base - 1:+8.1%} "
            f"{seconds * 60_000 / len(x):9.1f}s"
        )


def main() -> None:
    """Entry point of ``python -m advlit.bench``."""
    from jsonargparse import CLI

    from advlit.bench_attacks import attacks

    CLI({"train": train, "attacks": attacks}, as_positional=False)


if __name__ == "__main__":
    main()
