"""MNIST as device-resident tensors, batched augmentation and the DataModule."""

from advlit.data.augment import Augment
from advlit.data.batches import TensorBatches
from advlit.data.datamodule import MNISTDataModule
from advlit.data.mnist import MNIST_FILES, download_mnist, load_mnist

__all__ = ["MNIST_FILES", "Augment", "MNISTDataModule", "TensorBatches", "download_mnist", "load_mnist"]
