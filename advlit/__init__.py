"""advlit: black-box adversarial training on MNIST (Park & So, 2020) with PyTorch Lightning."""

__version__ = "0.1.0"
