"""ResNet18 for MNIST: torchvision's network with a 1-channel stem (11,175,370 parameters)."""

import torch
from torch import nn
from torchvision.models import resnet18

from advlit.models.lenet5 import MNIST_MEAN, MNIST_STD


class ResNet18(nn.Module):
    """torchvision ``resnet18(num_classes=10)`` whose first 7x7 conv takes one channel.

    Maps ``(N, 1, 28, 28)`` images in [0, 1] to ``(N, 10)`` logits; normalisation
    is a buffer inside the model.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(MNIST_MEAN), persistent=False)
        self.register_buffer("std", torch.tensor(MNIST_STD), persistent=False)
        self.net = resnet18(num_classes=num_classes)
        self.net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits for images ``x`` in [0, 1]."""
        return self.net((x - self.mean) / self.std)
