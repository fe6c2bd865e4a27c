"""Shared fixtures: a tiny, learnable MNIST written as IDX files, and the real MNIST where present."""

import os
import struct
from pathlib import Path
from unittest import mock

import pytest
import torch
from torch.nn import functional as F

REAL_MNIST = Path(os.environ.get("ADVLIT_MNIST", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))


def write_idx(path: Path, data: torch.Tensor) -> None:
    """Write a uint8 tensor in the IDX format that MNIST uses."""
    magic = 0x0800 | data.dim()
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic))
        f.write(struct.pack(f">{data.dim()}I", *data.shape))
        f.write(data.to(torch.uint8).numpy().tobytes())


def digit_templates(generator: torch.Generator) -> torch.Tensor:
    """Ten blurred random stroke images ``(10, 1, 28, 28)``: the fixture's "digits"."""
    templates = (torch.rand(10, 1, 14, 14, generator=generator) > 0.72).float()
    templates = F.interpolate(templates, size=(20, 20), mode="bilinear", align_corners=False)
    return F.pad(templates, (4, 4, 4, 4))


def synthetic_digits(n: int, templates: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(n, 28, 28)`` uint8 of the templates, shifted and noised, and their labels."""
    y = torch.arange(n) % 10
    shifts = torch.randint(-2, 3, (n, 2), generator=generator)
    x = torch.stack(
        [torch.roll(templates[c, 0], tuple(s.tolist()), dims=(0, 1)) for c, s in zip(y, shifts, strict=True)]
    )
    x = (x * 1.6 + 0.15 * torch.rand(n, 28, 28, generator=generator)).clamp(0, 1)
    return (x * 255).round().to(torch.uint8), y.to(torch.uint8)


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data_dir holding 600 train and 200 test synthetic images as MNIST IDX files."""
    root = tmp_path_factory.mktemp("mnist")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    gen = torch.Generator().manual_seed(1234)
    templates = digit_templates(gen)
    for prefix, n in (("train", 600), ("t10k", 200)):
        x, y = synthetic_digits(n, templates, gen)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", x)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", y)
    return root


@pytest.fixture(scope="session")
def real_mnist() -> Path:
    """The real MNIST folder; skips the test where it is absent."""
    if not (REAL_MNIST / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
        pytest.skip(f"real MNIST not found at {REAL_MNIST} (set ADVLIT_MNIST)")
    return REAL_MNIST


CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def run_cli(*args: str) -> int:
    """Run ``advlit ARGS`` in process and return its exit code."""
    from advlit.cli import main

    try:
        with mock.patch("sys.argv", ["advlit"]):
            main(list(args))
    except SystemExit as exit:
        return int(exit.code or 0)
    return 0


def smoke_args(mnist_dir: Path, cache: Path, *configs: str) -> list[str]:
    """``fit`` arguments for a smoke run of ``configs`` on the fixture data, quiet, with its own cache."""
    args = ["fit"]
    for name in (*configs, "smoke.yaml"):
        args += ["--config", str(CONFIGS / name)]
    return args + [
        "--data.data_dir", str(mnist_dir), "--data.download", "false", "--data.cache_dir", str(cache),
        "--data.progress", "false", "--trainer.enable_progress_bar", "false", "--trainer.log_every_n_steps", "1",
    ]  # fmt: skip
