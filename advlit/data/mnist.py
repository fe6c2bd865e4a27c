"""MNIST as tensors: ``load_mnist`` and ``download_mnist`` with one-line errors."""

from pathlib import Path

import torch
from torchvision.datasets import MNIST

from advlit.runtime.errors import MissingDataError

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


def _read_idx(path: Path, ndim: int) -> torch.Tensor:
    """A uint8 IDX file (MNIST's format) as a tensor; a MissingDataError naming the file if it is
    absent, of another kind, truncated or padded."""
    if not path.exists():
        raise MissingDataError(f"MNIST file {path} not found: {_expected(path.parents[2])}")
    data = path.read_bytes()
    header = 4 + 4 * ndim
    magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if magic != (0x0800 | ndim) or len(data) < header:
        raise MissingDataError(f"MNIST file {path} is corrupt: not a {ndim}-d uint8 IDX file (magic {magic})")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    size = header + int(torch.Size(dims).numel())
    if len(data) != size:
        raise MissingDataError(f"MNIST file {path} is corrupt: {len(data)} bytes, its header {dims} says {size}")
    return torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8).view(*dims)


def load_mnist(data_dir: str | Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one MNIST split as ``x`` float32 ``(N, 1, 28, 28)`` in [0, 1] and ``y`` int64 ``(N,)``.

    Reads the IDX files that ``torchvision.datasets.MNIST(root=data_dir)`` reads, from
    ``data_dir/MNIST/raw/``.

    Raises:
        MissingDataError: a file is not in ``data_dir`` (the message lists them) or is corrupt
            (the message names it).
    """
    raw = Path(data_dir).expanduser().resolve() / "MNIST" / "raw"
    if not any((raw / name).exists() for name in MNIST_FILES):
        raise MissingDataError(
            f"MNIST not found under data_dir={str(data_dir)!r}: {_expected(data_dir)}. "
            "Set --data.download true on a machine with internet, or point --data.data_dir at a copy"
        )
    prefix = "train" if train else "t10k"
    images = _read_idx(raw / f"{prefix}-images-idx3-ubyte", 3)
    labels = _read_idx(raw / f"{prefix}-labels-idx1-ubyte", 1)
    if images.shape[1:] != (28, 28) or len(images) != len(labels) or labels.max() > 9:
        raise MissingDataError(
            f"MNIST files in {raw} are corrupt: images {tuple(images.shape)}, {len(labels)} labels up to "
            f"{int(labels.max())} (expected (N, 28, 28) images, N labels in 0-9)"
        )
    return images.unsqueeze(1).float().div_(255), labels.long()
