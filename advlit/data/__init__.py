"""MNIST as device-resident tensors, batched augmentation and the DataModule."""

from advlit.data.augment import Augment
from advlit.data.batches import TensorBatches
from advlit.data.mnist import MNIST_FILES, download_mnist, load_mnist
from advlit.data.tensor_data import TensorData

__all__ = ["MNIST_FILES", "Augment", "MNISTDataModule", "TensorBatches", "TensorData", "download_mnist", "load_mnist"]


def __getattr__(name: str):
    """``MNISTDataModule`` on first use: it builds on advlit.study, which builds on this package, so
    importing it here eagerly would make the two packages import each other."""
    if name == "MNISTDataModule":
        from advlit.data.datamodule import MNISTDataModule

        return MNISTDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
