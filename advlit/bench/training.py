"""Speed figures, printed, never asserted: ``python -m advlit.bench train|attacks``."""

import time

import torch
from lightning.pytorch import Callback, Trainer
from torch.nn import functional as F

from advlit.data import Augment, load_mnist
from advlit.data.batches import TensorBatches
from advlit.models import Classifier, LeNet5, build_network
from advlit.runtime.devices import describe_device, pick_device, sync  # noqa: F401 (re-exported for scripts)
from advlit.runtime.quiet import quiet_third_party
from advlit.runtime.threads import cap_threads
from advlit.study.datamodule import MNISTDataModule


def _mnist_or_random(data_dir: str | None, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    if data_dir:
        x, y = load_mnist(data_dir, train=True)
        return x[:n], y[:n]
    gen = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 28, 28, generator=gen), torch.randint(0, 10, (n,), generator=gen)


def relu_before_pool(net: torch.nn.Module) -> torch.nn.Module:
    """LeNet5 in its earlier layer order (ReLU, then pool): the path before this change, for the bench."""
    if isinstance(net, LeNet5):
        conv1, pool1, relu1, conv2, pool2, relu2 = net.features
        net.features = torch.nn.Sequential(conv1, relu1, pool1, conv2, relu2, pool2)
    return net


def bare_epoch(
    arch: str, x: torch.Tensor, y: torch.Tensor, batch_size: int, augment: bool, channels_last: bool = True
) -> float:
    """Seconds for one epoch of a plain PyTorch loop over device tensors (NCHW: the earlier path)."""
    net = build_network(arch, channels_last).to(x.device)
    net = net if channels_last else relu_before_pool(net)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    aug, gen = Augment(), torch.Generator().manual_seed(0)
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


def lightning_epoch(
    arch: str,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    accelerator: str,
    channels_last: bool = True,
    compile: bool = False,
) -> float:
    """Seconds for one training epoch through advlit's Classifier and DataModule (augmentation on)."""
    timer = _EpochTimer()
    trainer = Trainer(
        accelerator=accelerator, devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        callbacks=[timer],
    )  # fmt: skip
    data = _FixedData(download=False, batch_size=batch_size, augment=True)
    data.train_x, data.train_y = x, y
    module = Classifier(arch, channels_last=channels_last)
    module.net = module.net if channels_last else relu_before_pool(module.net)
    if compile:  # compiled on the first batch, inside the timed epoch: the cost a run pays once
        module.net = torch.compile(module.net)
    trainer.fit(module, data)
    return timer.seconds


def score_seconds(arch: str, x: torch.Tensor, eval_batch_size: int, channels_last: bool) -> float:
    """Seconds to score ``x`` once, as the transfer evaluation does (no grad, eval mode)."""
    net = build_network(arch, channels_last).to(x.device).eval()
    net = net if channels_last else relu_before_pool(net)
    sync(x.device)
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(x), eval_batch_size):
            net(x[i : i + eval_batch_size]).argmax(1)
    sync(x.device)
    return time.perf_counter() - start


def _print_medians(title: str, times: dict[str, list[float]], images: int, base: str) -> None:
    median = {name: sorted(ts)[len(ts) // 2] for name, ts in times.items()}
    print(f"{title:44s} {'s':>8s} {'img/s':>9s} {'vs ' + base[:14]:>18s}")
    for name, seconds in median.items():
        print(f"{name:44s} {seconds:8.2f} {images / seconds:9.0f} {median[base] / seconds:17.2f}x")


def _interleaved(rows: dict, repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(repeats):  # interleaved, so drifts of a shared machine hit every variant alike
        for name, fn in rows.items():
            times[name].append(fn())
    return times


def train(
    arch: str = "lenet5",
    data_dir: str | None = None,
    images: int = 60_000,
    batch_size: int = 128,
    repeats: int = 3,
    accelerator: str = "auto",
    threads: int | None = None,
    compile: bool = False,
    eval_batch_sizes: tuple[int, ...] = (500, 1000, 2000, 5000),
) -> None:
    """Print training and scoring speeds: the earlier path (NCHW, LeNet5's ReLU before its pooling, scoring
    batch 1000) beside the current one (channels_last, pool before ReLU), bare loop vs advlit.

    Args:
        arch: lenet5 or resnet18.
        data_dir: MNIST folder; random pixels when not given.
        images: images per epoch.
        batch_size: training batch size.
        repeats: rounds; each round times every variant once, and the median is printed.
        accelerator: cpu, gpu or auto.
        threads: CPU threads (None: torch's default, one per core).
        compile: add a row with ``torch.compile`` (its compile time counts: a run pays it once).
        eval_batch_sizes: scoring rows, 10,000 images at each of these batch sizes.
    """
    quiet_third_party()
    cap_threads(threads)
    device = pick_device(accelerator)
    acc = "gpu" if device.type == "cuda" else "cpu"
    x, y = _mnist_or_random(data_dir, images)
    x, y = x.to(device), y.to(device)
    print(f"device: {describe_device(device)}; {arch}, {len(x)} images, batch {batch_size}")
    rows = {
        "bare loop, before, no augmentation": lambda: bare_epoch(arch, x, y, batch_size, False, False),
        "bare loop, before + augmentation": lambda: bare_epoch(arch, x, y, batch_size, True, False),
        "advlit, before (NCHW, ReLU then pool)": lambda: lightning_epoch(arch, x, y, batch_size, acc, False),
        "bare loop, now + augmentation": lambda: bare_epoch(arch, x, y, batch_size, True, True),
        "advlit, now (channels_last, pool then ReLU)": lambda: lightning_epoch(arch, x, y, batch_size, acc, True),
    }
    if compile:
        rows["advlit, now + torch.compile"] = lambda: lightning_epoch(arch, x, y, batch_size, acc, True, True)
    times = _interleaved(rows, repeats)
    _print_medians(f"training epoch (median of {repeats})", times, len(x), "advlit, before (NCHW, ReLU then pool)")
    overhead = (
        sorted(times["advlit, now (channels_last, pool then ReLU)"])[repeats // 2]
        / sorted(times["bare loop, now + augmentation"])[repeats // 2]
    )
    print(f"Lightning's overhead over the bare loop (now, augmentation): {overhead - 1:+.1%}")
    test = x[:10_000]
    score_rows = {
        f"score {len(test)}, batch {b}, {'now' if cl else 'before'}": (
            lambda b=b, cl=cl: score_seconds(arch, test, b, cl)
        )
        for cl in (False, True)
        for b in eval_batch_sizes
    }
    base = f"score {len(test)}, batch {1000 if 1000 in eval_batch_sizes else eval_batch_sizes[0]}, before"
    _print_medians(f"scoring (median of {repeats})", _interleaved(score_rows, repeats), len(test), base)


def main() -> None:
    """Entry point of ``python -m advlit.bench``."""
    from jsonargparse import CLI

    from advlit.bench.attacks import attacks

    CLI({"train": train, "attacks": attacks}, as_positional=False, allow_abbrev=False)


if __name__ == "__main__":
    main()
