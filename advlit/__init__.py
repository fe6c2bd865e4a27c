"""advlit: black-box adversarial training on MNIST (Park & So, 2020) with PyTorch Lightning."""

__version__ = "0.1.0"

CACHE_FORMAT = 2  # bump when attack or surrogate-training code changes what a cached file holds
