"""MNIST as device-resident tensors, batched augmentation, batching without a DataLoader."""

from advlit.data.augment import Augment
from advlit.data.batches import TensorBatches
from advlit.data.mnist import MNIST_FILES, download_mnist, load_mnist
from advlit.data.tensor_data import TensorData

__all__ = ["MNIST_FILES", "Augment", "TensorBatches", "TensorData", "download_mnist", "load_mnist"]
