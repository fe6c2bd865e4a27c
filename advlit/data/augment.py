"""The paper's augmentation as batched tensor ops with torchvision's semantics.

Per image, as ``RandomAffine(degrees, translate=(t, t))`` followed by
``RandomErasing(p, scale=(0.02, max_area), ratio=(0.3, 3.3), value=0)`` would draw and apply it:
a rotation angle uniform in [-degrees, degrees], a shift of ``round(U(-t * W, t * W))`` whole pixels
on each axis, nearest-neighbour resampling with zero fill; then, with probability ``p``, a
rectangle set to 0 (torchvision's ten tries at a box that fits, else no erasing).
"""

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch.nn import functional as F

from advlit.runtime.errors import ConfigError

Interpolation = Literal["nearest", "bilinear"]
_ERASE_TRIES = 10  # torchvision.transforms.v2.RandomErasing draws up to ten boxes
_ERASE_RATIO = (0.3, 3.3)
_ERASE_MIN_AREA = 0.02


def _to(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor onto ``device`` without waiting for the device's queued work."""
    return t.to(device, non_blocking=True)


@dataclass(frozen=True)
class Augment:
    """Random rotation and translation (one affine warp), then random erasing, per image.

    Args:
        degrees: rotation angle drawn uniformly from [-degrees, degrees].
        translate: largest shift as a fraction of the width (height): torchvision's ``translate``;
            0.2 of 28 px is 5.6 px, rounded to whole pixels (at most 6).
        erase_p: probability that an image gets a rectangle erased (set to 0).
        erase_max_area: largest erased fraction of the image; the smallest is 2%.
        interpolation: ``nearest`` (torchvision's default) or ``bilinear``.
    """

    degrees: float = 20.0
    translate: float = 0.2
    erase_p: float = 0.5
    erase_max_area: float = 0.3
    interpolation: Interpolation = "nearest"

    def __post_init__(self) -> None:
        if not 0 <= self.degrees <= 180:
            raise ConfigError(f"rotate_degrees={self.degrees} must be in [0, 180]")
        if not 0 <= self.translate <= 1:
            raise ConfigError(f"translate={self.translate} must be in [0, 1] (a fraction of the image size)")
        if not 0 <= self.erase_p <= 1:
            raise ConfigError(f"erase_p={self.erase_p} must be in [0, 1]")
        if not _ERASE_MIN_AREA <= self.erase_max_area <= 1:
            raise ConfigError(f"erase_max_area={self.erase_max_area} must be in [0.02, 1]")
        if self.interpolation not in ("nearest", "bilinear"):
            raise ConfigError(f"interpolation={self.interpolation!r} must be 'nearest' or 'bilinear'")

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a batch ``(N, C, H, W)``; every image gets its own random parameters."""
        angle, shift = self.affine_params(len(x), x.shape[-2:], generator, x.device)
        return self.erase(self.warp(x, angle, shift), self.erase_params(len(x), x.shape[-2:], generator, x.device))

    def affine_params(
        self, n: int, size: torch.Size, generator: torch.Generator, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(angle (N,) degrees, shift (N, 2) whole pixels (tx, ty))`` as RandomAffine draws them."""
        h, w = size
        rand = _to(torch.rand(n, 3, generator=generator, device=generator.device, dtype=torch.float64), device) * 2 - 1
        angle = rand[:, 0] * self.degrees
        limit = _to(torch.tensor([self.translate * w, self.translate * h], dtype=torch.float64), device)
        return angle, (rand[:, 1:] * limit).round()

    def warp(self, x: torch.Tensor, angle: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """Rotate by ``angle`` degrees about the centre and shift by ``shift`` pixels, per image:
        torchvision's ``affine`` (same inverse matrix, same sampling grid), batched."""
        n, _, h, w = x.shape
        rot = torch.deg2rad(angle)
        cos, sin = rot.cos(), rot.sin()
        tx, ty = shift[:, 0], shift[:, 1]
        # the output pixel p samples the input at R^-1 (p - t), in pixels about the centre
        theta = torch.stack([cos, sin, -cos * tx - sin * ty, -sin, cos, sin * tx - cos * ty], 1).view(n, 2, 3)
        theta = theta.to(x.dtype)  # torchvision casts its double-precision matrix to the image dtype
        xs = torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, steps=w, device=x.device, dtype=x.dtype)
        ys = torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, steps=h, device=x.device, dtype=x.dtype)
        base = torch.stack(
            [xs.expand(h, w), ys[:, None].expand(h, w), torch.ones(h, w, device=x.device, dtype=x.dtype)], -1
        )
        scale = _to(torch.tensor([0.5 * w, 0.5 * h], dtype=x.dtype), x.device)
        grid = base.view(1, h * w, 3).expand(n, -1, -1).bmm(theta.transpose(1, 2) / scale)
        return F.grid_sample(
            x, grid.view(n, h, w, 2), mode=self.interpolation, padding_mode="zeros", align_corners=False
        )

    def erase_params(self, n: int, size: torch.Size, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """``(N, 4)`` boxes ``(top, left, height, width)`` as RandomErasing draws them; height 0: none."""
        h, w = size
        draw = {"generator": generator, "device": generator.device, "dtype": torch.float64}
        rand = _to(torch.rand(n, _ERASE_TRIES, 4, **draw), device)
        area = h * w * (_ERASE_MIN_AREA + (self.erase_max_area - _ERASE_MIN_AREA) * rand[..., 0])
        lo, hi = math.log(_ERASE_RATIO[0]), math.log(_ERASE_RATIO[1])
        ratio = (lo + (hi - lo) * rand[..., 1]).exp()
        eh, ew = (area * ratio).sqrt().round(), (area / ratio).sqrt().round()
        fits = (eh < h) & (ew < w)  # (N, tries)
        first = torch.where(fits.any(1), fits.int().argmax(1), 0)
        pick = torch.arange(n, device=device)
        eh, ew, r = eh[pick, first], ew[pick, first], rand[pick, first]
        top, left = (r[:, 2] * (h - eh + 1)).floor(), (r[:, 3] * (w - ew + 1)).floor()
        erase = fits.any(1) & (_to(torch.rand(n, **draw), device) < self.erase_p)
        return torch.stack([top, left, eh, ew], 1).long() * erase[:, None]

    @staticmethod
    def erase(x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Set each image's box ``(top, left, height, width)`` to 0 (height 0: unchanged)."""
        _, _, h, w = x.shape
        top, left, eh, ew = boxes.to(x.device).unbind(1)
        rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
        in_rows = (rows >= top[:, None]) & (rows < (top + eh)[:, None])  # (N, H)
        in_cols = (cols >= left[:, None]) & (cols < (left + ew)[:, None])  # (N, W)
        return x.masked_fill((in_rows[:, :, None] & in_cols[:, None, :])[:, None], 0.0)
