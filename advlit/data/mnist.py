"""MNIST as tensors: ``load_mnist`` and ``download_mnist`` with one-line errors."""

from pathlib import Path

import torch
from torchvision.datasets import MNIST

from advlit.errors import MissingDataError

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _expected(data_dir: str | Path) -> str:
    raw = Path(data_dir).expanduser().resolve() / "MNIST" / "raw"
    return f"{raw} should hold {', '.join(MNIST_FILES)}"


def download_mnist(data_dir: str | Path) -> None:
    """Download MNIST into ``data_dir`` unless its files are already there.

    Raises:
        MissingDataError: the download failed (offline, say).
    """
    try:
        for train in (True, False):
            MNIST(str(Path(data_dir).expanduser()), train=train, download=True)
    except (RuntimeError, OSError) as err:
        raise MissingDataError(
            f"could not download MNIST to data_dir={str(data_dir)!r} ({err}); {_expected(data_dir)}. "
            "Copy them there, or point --data.data_dir at a folder that has them"
        ) from None


def load_mnist(data_dir: str | Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one MNIST split as ``x`` float32 ``(N, 1, 28, 28)`` in [0, 1] and ``y`` int64 ``(N,)``.

    Raises:
        MissingDataError: the files are not in ``data_dir`` (the message lists them).
    """
    try:
        ds = MNIST(str(Path(data_dir).expanduser()), train=train, download=False)
    except RuntimeError:
        raise MissingDataError(
            f"MNIST not found under data_dir={str(data_dir)!r}: {_expected(data_dir)}. "
            "Set --data.download true on a machine with internet, or point --data.data_dir at a copy"
        ) from None
    x = ds.data.unsqueeze(1).float().div_(255)  # (N, 1, 28, 28)
    return x, ds.targets.long()
