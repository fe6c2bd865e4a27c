"""The paper's augmentation as batched tensor ops: rotation, translation, random erasing."""

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from advlit.errors import ConfigError


@dataclass(frozen=True)
class Augment:
    """Random rotation and translation (one affine warp), then random erasing, per image.

    Args:
        degrees: rotation angle drawn uniformly from [-degrees, degrees].
        translate_px: shift drawn uniformly from [-translate_px, translate_px] on each axis.
        erase_p: probability that an image gets a rectangle erased (set to 0).
        erase_max_area: largest erased fraction of the image; the smallest is 2%.
    """

    degrees: float = 20.0
    translate_px: float = 6.0
    erase_p: float = 0.5
    erase_max_area: float = 0.3

    def __post_init__(self) -> None:
        if not 0 <= self.degrees <= 180:
            raise ConfigError(f"rotate_degrees={self.degrees} must be in [0, 180]")
        if self.translate_px < 0:
            raise ConfigError(f"translate_px={self.translate_px} must be >= 0")
        if not 0 <= self.erase_p <= 1:
            raise ConfigError(f"erase_p={self.erase_p} must be in [0, 1]")
        if not 0.02 <= self.erase_max_area <= 1:
            raise ConfigError(f"erase_max_area={self.erase_max_area} must be in [0.02, 1]")

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a batch ``(N, C, H, W)``; every image gets its own random parameters."""
        return self.erase(self.warp(x, generator), generator)

    def warp(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, _, h, w = x.shape
        rand = torch.rand(n, 3, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1
        angle = rand[:, 0] * math.radians(self.degrees)
        tx = rand[:, 1] * self.translate_px * 2 / w  # pixels -> normalised coordinates
        ty = rand[:, 2] * self.translate_px * 2 / h
        cos, sin = angle.cos(), angle.sin()
        # the output pixel p samples the input at R^T (p - t)
        theta = torch.stack(
            [
                torch.stack([cos, sin, -(cos * tx + sin * ty)], 1),
                torch.stack([-sin, cos, sin * tx - cos * ty], 1),
            ],
            1,
        )  # (N, 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def erase(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, _, h, w = x.shape
        rand = torch.rand(n, 5, generator=generator, device=x.device)
        area = (0.02 + (self.erase_max_area - 0.02) * rand[:, 0]) * h * w
        log_ratio = math.log(0.3) + (math.log(3.3) - math.log(0.3)) * rand[:, 1]
        # floor keeps eh * ew <= area <= erase_max_area * h * w
        eh = (area * log_ratio.exp()).sqrt().floor().clamp(1, h)
        ew = (area / log_ratio.exp()).sqrt().floor().clamp(1, w)
        top = (rand[:, 2] * (h - eh + 1)).floor()
        left = (rand[:, 3] * (w - ew + 1)).floor()
        rows = torch.arange(h, device=x.device)
        cols = torch.arange(w, device=x.device)
        in_rows = (rows >= top[:, None]) & (rows < (top + eh)[:, None])  # (N, H)
        in_cols = (cols >= left[:, None]) & (cols < (left + ew)[:, None])  # (N, W)
        mask = in_rows[:, :, None] & in_cols[:, None, :] & (rand[:, 4] < self.erase_p)[:, None, None]
        return x.masked_fill(mask[:, None], 0.0)
