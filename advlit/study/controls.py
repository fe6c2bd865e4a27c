"""Matched-noise controls: random perturbations with an attack's budget, image by image.

An accuracy drop that such noise causes too is fragility, not transfer. Each control spends the
same budget as the attack did on that image, in the attack's norm, in a random direction:

- L_inf (FGSM, PGD): a random sign per pixel times the image's L_inf, clipped to [0, 1];
- L_0 (JSMA): as many pixels as the attack changed, drawn among the pixels that can still move
  (below 1 for theta > 0), set to 1 (0 for theta < 0);
- L_2 (C&W): a Gaussian direction scaled, per image, so that after clipping to [0, 1] its L2 is
  the attack's (as nearly as clipping allows: bisection on the scale).

Randomness is drawn per image from its content and ``seed`` (:mod:`advlit.attacks.rng`), so a
control does not depend on batching. Images the attack left unchanged stay unchanged.
"""

import math

import torch

from advlit.attacks import FGSM, JSMA, PGD, Attack, CarliniWagnerL2
from advlit.attacks.rng import image_keys, uniform

NOISE_SEED = 0
_BISECTION_STEPS = 40


def norm_of(attack: Attack) -> str:
    """The attack's norm: ``linf``, ``l0`` or ``l2`` (a ValueError for an attack without one)."""
    for kinds, norm in (((FGSM, PGD), "linf"), ((JSMA,), "l0"), ((CarliniWagnerL2,), "l2")):
        if isinstance(attack, kinds):
            return norm
    if hasattr(attack, "norm"):
        return attack.norm
    raise ValueError(f"{type(attack).__name__} declares no norm; give it a `norm` attribute (linf, l0 or l2)")


def matched_noise(attack: Attack, x: torch.Tensor, x_adv: torch.Tensor, seed: int = NOISE_SEED) -> torch.Tensor:
    """The control of ``x_adv`` (made by ``attack`` from ``x``): same shape, pixels in [0, 1]."""
    norm = norm_of(attack)
    flat, diff = x.flatten(1), (x_adv - x).flatten(1)
    u = uniform(image_keys(x, seed), (2, flat.shape[1]))  # (N, 2, D)
    if norm == "linf":
        eps = diff.abs().amax(1, keepdim=True)
        out = (flat + eps * torch.where(u[:, 0] < 0.5, -1.0, 1.0)).clamp(0, 1)
    elif norm == "l0":
        out = _random_pixels(flat, (diff != 0).sum(1), u[:, 0], up=getattr(attack, "theta", 1.0) > 0)
    else:
        gauss = (-2 * torch.log1p(-u[:, 0])).sqrt() * torch.cos(2 * math.pi * u[:, 1])  # Box-Muller
        out = _scaled_to_l2(flat, gauss, diff.norm(dim=1))
    return out.view_as(x).to(x.dtype)


def _random_pixels(flat: torch.Tensor, count: torch.Tensor, u: torch.Tensor, up: bool) -> torch.Tensor:
    """Set ``count[i]`` random movable pixels of image i to 1 (``up``) or 0."""
    movable = flat < 1 if up else flat > 0
    score = torch.where(movable, u, -1.0)  # movable pixels first, in random order
    rank = score.argsort(1, descending=True).argsort(1)
    chosen = (rank < count[:, None]) & movable
    return torch.where(chosen, 1.0 if up else 0.0, flat)


def _scaled_to_l2(flat: torch.Tensor, direction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``clip(x + s * d)`` with s per image such that its L2 distance to x is ``target``.

    The clipped distance grows with s, so bisection finds s; where clipping caps the distance
    below the target, the largest reachable distance is taken.
    """
    direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-12)
    lo, hi = torch.zeros_like(target), 16 * target + 1e-12
    for _ in range(_BISECTION_STEPS):
        mid = (lo + hi) / 2
        dist = ((flat + mid[:, None] * direction).clamp(0, 1) - flat).norm(dim=1)
        short = dist < target
        lo, hi = torch.where(short, mid, lo), torch.where(short, hi, mid)
    out = (flat + hi[:, None] * direction).clamp(0, 1)
    return torch.where(target[:, None] > 0, out, flat)
