"""Per-image randomness keyed by image content, so a batch and its images alone draw alike."""

import torch

_M1 = 0xBF58476D1CE4E5B9 - (1 << 64)  # splitmix64 constants as signed int64
_M2 = 0x94D049BB133111EB - (1 << 64)
_GOLDEN = 0x9E3779B97F4A7C15 - (1 << 64)


def _shr(z: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic)."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def mix(z: torch.Tensor) -> torch.Tensor:
    """The splitmix64 finaliser on int64 tensors: a bijective bit scrambler."""
    z = (z ^ _shr(z, 30)) * _M1
    z = (z ^ _shr(z, 27)) * _M2
    return z ^ _shr(z, 31)


def image_keys(x: torch.Tensor, seed: int) -> torch.Tensor:
    """An int64 key per image ``(N,)`` from its pixels (quantised to 8 bits) and ``seed``."""
    q = (x.detach().flatten(1) * 255).round().to(torch.int64)  # (N, D)
    weights = mix(torch.arange(1, q.shape[1] + 1, device=x.device, dtype=torch.int64) * _GOLDEN + seed)
    return mix((q * weights).sum(1) + seed)


def uniform(keys: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Uniform floats in [0, 1), ``(N, *shape)``, each image's stream a function of its key alone."""
    count = int(torch.Size(shape).numel())
    counter = torch.arange(count, device=keys.device, dtype=torch.int64)
    bits = mix(keys[:, None] * _GOLDEN + counter + 1)  # (N, count)
    return (_shr(bits, 40).to(torch.float32) / float(1 << 24)).view(len(keys), *shape)


def other_class(keys: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """A class other than ``y`` per image, uniform over the other ``num_classes - 1``."""
    return (y + 1 + keys.remainder(num_classes - 1)) % num_classes
