"""Matched-noise controls: random perturbations with an attack's budget, image by image.

An accuracy drop that such noise causes too is fragility, not transfer. Each control spends the
same budget as the attack did on that image, in the attack's norm, in a random direction:

- L_inf (FGSM, PGD): a random sign per pixel times the image's L_inf, clipped to [0, 1];
- L_0 (JSMA): the attack's own per-pixel changes (the same amounts), each moved to a random pixel
  that can take it without clipping, so L0, L1 and L2 match the attack's exactly (largest change
  first, each to the first free pixel in a random order that has room for it);
- L_2 (C&W): as many random pixels as the attack changed, moved by Gaussian amounts (a pixel at 0
  or 1 always inwards), scaled per image so that after clipping to [0, 1] the L2 is the attack's
  (bisection on the scale): L0 and L2 match;
- ``changes`` (MI-, DI-, TI-FGSM: iterative L_inf attacks that leave many pixels under eps, so
  sign noise at eps on every pixel would spend far more L1 and L2 than they do): the attack's own
  per-pixel changes moved to random pixels, as for L_0, so L0, L1, L2 and L_inf all match. Its
  random order is drawn from a stream of its own (:data:`CHANGES_STREAM`), apart from the draws of
  any attack seeded with a small integer (DI's).

What each control misses its attack by is in every set's quality (``budget`` of the attack's set
and of its ``_noise`` set, in metrics.json and ``advlit report``).

Randomness is drawn per image from its content and ``seed`` (:mod:`advlit.attacks.rng`), so a
control does not depend on batching. Images the attack left unchanged stay unchanged.
"""

import math

import torch

from advlit.attacks import FGSM, JSMA, PGD, Attack, CarliniWagnerL2
from advlit.attacks.rng import image_keys, uniform

NOISE_SEED = 0
# What the controls are: part of a test set's cache entry; a set whose controls are of another version
# gets new ones made from its stored examples (the attack is not run again).
CONTROLS_VERSION = 2
CHANGES_STREAM = 0x6368616E6765  # the seed offset of the ``changes`` control's draws ("change")
_BISECTION_STEPS = 40


def controls_key(attack: Attack) -> int | str:
    """What a test set's cache key holds of its control: :data:`CONTROLS_VERSION`, and for the
    ``changes`` kind (added in that version, after sign noise had stood for MI/DI/TI-FGSM) its name,
    so that no set with the earlier control is reused."""
    return f"{CONTROLS_VERSION}/changes" if norm_of(attack) == "changes" else CONTROLS_VERSION


def norm_of(attack: Attack) -> str:
    """The attack's norm, i.e. its control's kind: ``linf``, ``l0``, ``l2`` or ``changes`` (a ValueError
    for an attack without one)."""
    for kinds, norm in (((FGSM, PGD), "linf"), ((JSMA,), "l0"), ((CarliniWagnerL2,), "l2")):
        if isinstance(attack, kinds):
            return norm
    if hasattr(attack, "norm"):
        return attack.norm
    raise ValueError(f"{type(attack).__name__} declares no norm; give it a `norm` attribute (linf, l0, l2, changes)")


def matched_noise(attack: Attack, x: torch.Tensor, x_adv: torch.Tensor, seed: int = NOISE_SEED) -> torch.Tensor:
    """The control of ``x_adv`` (made by ``attack`` from ``x``): same shape, pixels in [0, 1]."""
    norm = norm_of(attack)
    flat, diff = x.flatten(1), (x_adv - x).flatten(1)
    u = uniform(image_keys(x, seed), (2, flat.shape[1]))  # (N, 2, D)
    if norm == "linf":
        eps = diff.abs().amax(1, keepdim=True)
        out = (flat + eps * torch.where(u[:, 0] < 0.5, -1.0, 1.0)).clamp(0, 1)
    elif norm == "l0":
        out = _moved_changes(flat, diff, u[:, 0])
    elif norm == "changes":
        out = _moved_changes(flat, diff, uniform(image_keys(x, seed + CHANGES_STREAM), (flat.shape[1],)))
    else:
        gauss = (-2 * torch.log1p(-u[:, 0])).sqrt() * torch.cos(2 * math.pi * u[:, 1])  # Box-Muller
        chosen = _random_choice(u[:, 0], (diff != 0).sum(1))
        inwards = torch.where(flat <= 0, 1.0, torch.where(flat >= 1, -1.0, 1.0))  # a pixel at 0 or 1 moves in
        direction = torch.where(chosen, torch.where(flat.gt(0) & flat.lt(1), gauss, gauss.abs() * inwards), 0.0)
        out = _scaled_to_l2(flat, direction, diff.norm(dim=1))
    return out.view_as(x).to(x.dtype)


def _random_choice(u: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """A mask of ``count[i]`` pixels of image i, drawn at random (``u``: a uniform per pixel)."""
    rank = u.argsort(1, descending=True).argsort(1)
    return rank < count[:, None]


def _moved_changes(flat: torch.Tensor, diff: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Each image's non-zero changes ``diff``, moved to random pixels that can take them unclipped.

    The changes go largest first, each to the first free pixel, in the random order ``u``, that
    has room for it; for changes of one sign the pixels with room for a change include those with
    room for every larger one, so this finds a place for each whenever there is one. A change with
    no such place (none in practice) goes to the first free pixel and is clipped there.
    """
    changes = diff.gather(1, diff.abs().argsort(1, descending=True))  # largest first, zeros last
    count = int((diff != 0).sum(1).max()) if len(diff) else 0
    out, free = flat.clone(), torch.ones_like(flat, dtype=torch.bool)
    rows = torch.arange(len(flat), device=flat.device)
    for r in range(count):  # a step per change rank (at most the attack's largest L0), batched over images
        d = changes[:, r : r + 1]
        room = free & (flat + d >= 0) & (flat + d <= 1)
        score = torch.where(room, u + 1, torch.where(free, u, -1.0))  # pixels with room first
        pixel = score.argmax(1)
        moving = d[:, 0] != 0
        out[rows, pixel] = torch.where(moving, (flat[rows, pixel] + d[:, 0]).clamp(0, 1), out[rows, pixel])
        free[rows, pixel] &= ~moving
    return out


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
