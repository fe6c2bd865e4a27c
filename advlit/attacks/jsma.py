"""Jacobian-based Saliency Map Attack."""

from typing import Literal

import torch
from torch import nn

from advlit.attacks.base import Attack, check_labels, check_range, fixed_shapes
from advlit.attacks.rng import image_keys, other_class
from advlit.attacks.saliency import best_pairs, best_pixels
from advlit.runtime.errors import ConfigError


class JSMA(Attack):
    """JSMA, Papernot et al. 2016 (https://arxiv.org/abs/1511.07528).

    L_0 attack towards a target class t: each step takes the gradients of the target logit
    and of the sum of the other logits (two backward passes, not a full Jacobian), picks the
    most salient pixel (``variant="single"``, the one-pixel rule of the paper's section 2.2.2 and
    Papernot's Eq. 8, the default) or pixel pair (``"pairs"``, Papernot's Algorithm 3, as
    cleverhans) still in the search domain, and moves it by ``theta`` (clipped to
    [0, 1]). An image stops when it is classified as t, when no admissible pixel is left, or
    after ``gamma * D`` changed pixels; finished images leave the batch (on a GPU they stay in it,
    masked: :meth:`targeted_fixed`).
    Untargeted use: ``target="random"`` draws t != y from the image content and ``seed``;
    ``target="best"`` tries every t != y and keeps the reached one with the fewest pixels.
    Shapes: ``x`` ``(N, C, H, W)`` in [0, 1], ``y`` ``(N,)``.

    Args:
        theta: change per selected pixel (1.0 sets a pixel to 1; negative values decrease).
        gamma: largest fraction of the pixels that may change.
        target: ``random`` or ``best``.
        variant: ``single`` (default) or ``pairs``.
        seed: seed of the random targets.
        working_batch: images stepped together; finished images are replaced from the rest of
            the call's images, so the batch stays full (None: all of them at once). On a GPU the
            call is split into chunks of this size instead, without refill.
    """

    def __init__(
        self,
        theta: float = 1.0,
        gamma: float = 0.2,
        target: Literal["random", "best"] = "random",
        variant: Literal["pairs", "single"] = "single",
        seed: int = 0,
        working_batch: int | None = None,
    ) -> None:
        check_range("theta", theta, -1.0, 1.0)
        if theta == 0:
            raise ConfigError("theta=0 changes no pixel; use a value in [-1, 0) or (0, 1]")
        check_range("gamma", gamma, 0.0, 1.0)
        if target not in ("random", "best"):
            raise ConfigError(f"target={target!r} must be 'random' or 'best'")
        if variant not in ("pairs", "single"):
            raise ConfigError(f"variant={variant!r} must be 'pairs' or 'single'")
        if working_batch is not None and working_batch < 1:
            raise ConfigError(f"working_batch={working_batch} must be >= 1 or None")
        self.theta, self.gamma, self.target, self.variant, self.seed = float(theta), float(gamma), target, variant, seed
        self.working_batch = working_batch

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            num_classes = model(x[:1]).shape[1]
        check_labels(y, num_classes)
        if self.target == "random":
            return self.targeted(model, x, other_class(image_keys(x, self.seed), y, num_classes))
        offsets = torch.arange(1, num_classes, device=x.device)  # (K,) every other class
        targets = (y[None, :] + offsets[:, None]) % num_classes  # (K, N)
        x_all = self.targeted(model, x.repeat(len(offsets), 1, 1, 1), targets.flatten())
        with torch.no_grad():
            pred = model(x_all).argmax(1).view_as(targets)
        x_all = x_all.view(len(offsets), *x.shape)
        l0 = (x_all != x).flatten(2).sum(2)  # (K, N)
        big = x[0].numel() + 1
        cost = l0 + big * (pred != targets) + big * (pred == y)  # reached < misclassified < failed
        return x_all[cost.argmin(0), torch.arange(len(x), device=x.device)]

    def targeted(self, model: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Move each image towards its target class ``t``; returns the perturbed batch: in fixed
        shapes on a GPU (:meth:`targeted_fixed`), else with finished images leaving the batch."""
        if fixed_shapes(x):
            width = self.working_batch or len(x)
            return torch.cat([self.targeted_fixed(model, x[a : a + width], t[a : a + width])
                              for a in range(0, len(x), width)]) if len(x) else x.clone()  # fmt: skip
        return self.targeted_shrinking(model, x, t)

    def targeted_fixed(self, model: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """:meth:`targeted_shrinking` in fixed shapes: every image stays in the batch and a finished
        one is masked out of every update, so a step reads nothing back from the device (with the
        one-pixel rule; the pair rule sizes its search on the host); whether all have finished is
        read every 8 steps. Each image follows the same path as in the shrinking loop (tested)."""
        n, shape, d = len(x), x.shape[1:], x[0].numel()
        x_adv = x.flatten(1).clone()  # (N, D)
        sign = 1.0 if self.theta > 0 else -1.0
        domain = x_adv < 1 if self.theta > 0 else x_adv > 0
        per_step = 2 if self.variant == "pairs" else 1
        max_steps = int(self.gamma * d) // per_step
        steps = torch.zeros(n, dtype=torch.int64, device=x.device)
        alive = torch.ones(n, dtype=torch.bool, device=x.device)
        for it in range(max_steps):
            xa = x_adv.view(-1, *shape).requires_grad_(True)
            logits = model(xa)
            (g_t,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), xa, retain_graph=True)
            (g_all,) = torch.autograd.grad(logits.sum(), xa)
            u, v = sign * g_t.flatten(1), -sign * (g_all - g_t).flatten(1)
            if per_step == 2:
                p, q, ok = best_pairs(u, v, domain & alive[:, None])  # finished rows: no candidates to size
            else:
                (p, ok), q = best_pixels(u, v, domain), None
            go = alive & (logits.argmax(1) != t) & ok & (domain.sum(1) >= per_step)
            for idx in (p[:, None],) if q is None else (p[:, None], q[:, None]):
                now = x_adv.gather(1, idx)
                x_adv.scatter_(1, idx, torch.where(go[:, None], (now + self.theta).clamp(0, 1), now))
                domain.scatter_(1, idx, domain.gather(1, idx) & ~go[:, None])
            steps += go
            alive = go & (steps < max_steps)
            if it % 8 == 7 and not alive.any():
                break
        return x_adv.view_as(x)

    def targeted_shrinking(self, model: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Move each image towards its target class ``t``; returns the perturbed batch.

        At most ``working_batch`` images are stepped together; an image that finishes is replaced
        by the next one not yet started, so the batch stays full (each image's path is its own).
        """
        n, shape, d = len(x), x.shape[1:], x[0].numel()
        x_adv = x.flatten(1).clone()  # (N, D)
        sign = 1.0 if self.theta > 0 else -1.0
        domain = x_adv < 1 if self.theta > 0 else x_adv > 0  # pixels that can still move
        per_step = 2 if self.variant == "pairs" else 1
        max_steps = int(self.gamma * d) // per_step
        steps = torch.zeros(n, dtype=torch.int64, device=x.device)
        width = self.working_batch or n
        active = torch.arange(min(width, n) if max_steps > 0 else 0, device=x.device)
        started = len(active)
        while len(active):
            xa = x_adv[active].view(-1, *shape).requires_grad_(True)
            logits = model(xa)
            ta = t[active]
            (g_t,) = torch.autograd.grad(logits.gather(1, ta[:, None]).sum(), xa, retain_graph=True)
            (g_all,) = torch.autograd.grad(logits.sum(), xa)
            u, v = sign * g_t.flatten(1), -sign * (g_all - g_t).flatten(1)  # (A, D)
            dom = domain[active]
            if per_step == 2:
                p, q, ok = best_pairs(u, v, dom)
            else:
                (p, ok), q = best_pixels(u, v, dom), None
            go = (logits.argmax(1) != ta) & ok & (dom.sum(1) >= per_step)
            rows = active[go]
            for idx in (p[go],) if q is None else (p[go], q[go]):
                x_adv[rows, idx] = (x_adv[rows, idx] + self.theta).clamp(0, 1)
                domain[rows, idx] = False
            steps[rows] += 1
            active = rows[steps[rows] < max_steps]
            if len(active) < width and started < n:
                new = torch.arange(started, min(n, started + width - len(active)), device=x.device)
                started += len(new)
                active = torch.cat([active, new])
        return x_adv.view_as(x)
