"""Carlini-Wagner L2 attack."""

import logging

import torch
from torch import nn

from advlit.attacks.base import Attack, check_labels, check_range, fixed_shapes
from advlit.runtime.errors import ConfigError

log = logging.getLogger(__name__)
_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8  # Adam, as in Carlini's code (TensorFlow defaults)


class CarliniWagnerL2(Attack):
    """C&W L2, Carlini & Wagner 2017 (https://arxiv.org/abs/1608.04644).

    Untargeted: minimise ``||x' - x||_2^2 + c * max(Z_y - max_{j!=y} Z_j + confidence, 0)`` over
    ``x' = (tanh(w) + 1) / 2`` with Adam, for ``binary_search_steps`` values of c found per image
    by binary search (x10 until a success, then bisection). Each image keeps the smallest-L2
    example misclassified with margin >= ``confidence``; an image with none keeps ``x``.
    With ``abort_early`` an image stops a search step when its loss has not dropped by 0.01%
    over the last ``max_iterations // 10`` iterations, and leaves the batch. Images whose logits
    or loss turn non-finite leave the batch at once and are never written. (On a GPU finished
    images stay in the batch, masked out of the kept examples: :meth:`search_step_fixed`.)
    The optimisation starts at ``w = atanh((2x - 1) * tanh_scale)``. Carlini's 0.999999 puts
    saturated pixels (0 or 1, most of an MNIST image) at ``|w| = 7.25``, where Adam's steps of
    about ``lr`` need ``(7.25 - 2.6) / lr`` iterations before such a pixel moves at all; 0.99 starts
    them 0.005 inside the box (``|w| = 2.65``), so far fewer iterations reach the same L2.
    Shapes: ``x`` ``(N, C, H, W)`` in [0, 1], ``y`` ``(N,)``.

    Args:
        confidence: required logit margin (the paper's 5).
        c_init: first value of c.
        binary_search_steps: values of c tried per image.
        max_iterations: Adam steps per value of c.
        lr: Adam's learning rate.
        abort_early: stop an image's search step when its loss stalls.
        tanh_scale: in (0, 1); how far inside the box saturated pixels start (see above).
        snap: pixels that moved by less than this are put back exactly (on every candidate, before
            it is scored, so a kept example is verified as snapped): the optimisation's leftovers,
            such as a saturated pixel's start offset, leave no fingerprint (0: off, Carlini's).
    """

    def __init__(
        self,
        confidence: float = 5.0,
        c_init: float = 1e-3,
        binary_search_steps: int = 9,
        max_iterations: int = 1000,
        lr: float = 0.01,
        abort_early: bool = True,
        tanh_scale: float = 0.999999,
        snap: float = 0.0,
    ) -> None:
        check_range("confidence", confidence, 0.0, float("inf"))
        if c_init <= 0:
            raise ConfigError(f"c_init={c_init} must be positive")
        for name, value in (("binary_search_steps", binary_search_steps), ("max_iterations", max_iterations)):
            if value < 1:
                raise ConfigError(f"{name}={value} must be >= 1")
        if lr <= 0:
            raise ConfigError(f"lr={lr} must be positive")
        if not 0 < tanh_scale < 1:
            raise ConfigError(f"tanh_scale={tanh_scale} must be in (0, 1)")
        if not 0 <= snap < 1:
            raise ConfigError(f"snap={snap} must be in [0, 1)")
        self.tanh_scale, self.snap = float(tanh_scale), float(snap)
        self.confidence, self.c_init, self.lr = float(confidence), float(c_init), float(lr)
        self.binary_search_steps, self.max_iterations, self.abort_early = (
            binary_search_steps,
            max_iterations,
            abort_early,
        )

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            num_classes = model(x[:1]).shape[1]
        check_labels(y, num_classes)
        n = len(x)
        lower = torch.zeros(n, device=x.device)
        upper = torch.full((n,), 1e10, device=x.device)
        c = torch.full((n,), self.c_init, device=x.device)
        best_l2 = torch.full((n,), float("inf"), device=x.device)
        best_adv = x.clone()
        step = self.search_step_fixed if fixed_shapes(x) else self.search_step
        for _ in range(self.binary_search_steps):
            success = step(model, x, y, c, best_l2, best_adv)
            upper = torch.where(success, torch.minimum(upper, c), upper)
            lower = torch.where(success, lower, torch.maximum(lower, c))
            c = torch.where(upper < 1e9, (lower + upper) / 2, c * 10)
        return best_adv

    def search_step(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        c: torch.Tensor,
        best_l2: torch.Tensor,
        best_adv: torch.Tensor,
    ) -> torch.Tensor:
        """Optimise every image for its own c; update ``best_l2``/``best_adv`` in place.

        Returns:
            ``(N,)`` bool: the image reached the margin at some iteration of this step.
        """
        success = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        active = torch.arange(len(x), device=x.device)
        xa, ya, ca = x, y, c
        w = torch.atanh((2 * x - 1) * self.tanh_scale)
        m, v = torch.zeros_like(w), torch.zeros_like(w)
        prev = torch.full_like(c, float("inf"))
        check_every = max(1, self.max_iterations // 10)
        for it in range(self.max_iterations):
            x_adv, l2, loss, grad, margin, finite = self._iterate(model, w, xa, ya, ca)
            with torch.no_grad():
                reached = margin & finite
                better = reached & (l2 < best_l2[active])
                best_l2[active[better]] = l2[better]
                best_adv[active[better]] = x_adv[better]
                success[active[reached]] = True
                w = self._adam(w.detach(), grad, m, v, it + 1)
            keep = finite
            if self.abort_early and it % check_every == 0:
                keep = keep & ~(loss.detach() > prev * 0.9999)
                prev = loss.detach()
            if not keep.all():
                if not finite.all():
                    log.warning(
                        "C&W: %d images gave non-finite logits or loss; they keep their best", int((~finite).sum())
                    )
                active, xa, ya, ca, w, m, v, prev = (t[keep] for t in (active, xa, ya, ca, w, m, v, prev))
                if len(active) == 0:
                    break
        return success

    def search_step_fixed(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        c: torch.Tensor,
        best_l2: torch.Tensor,
        best_adv: torch.Tensor,
    ) -> torch.Tensor:
        """:meth:`search_step` in fixed shapes, the path on a GPU: every image stays in the batch
        and a finished one can no longer change its kept example or success (its optimiser state
        runs on, unused), so an iteration reads nothing back from the device; whether all have
        finished is read every ``max_iterations // 10`` iterations, and the count of images gone
        non-finite once per call of this step. Each image's kept example is the one
        :meth:`search_step` gives on the same device (tested on the CPU)."""
        success = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        alive = torch.ones(len(x), dtype=torch.bool, device=x.device)
        dropped = torch.zeros((), dtype=torch.int64, device=x.device)  # images gone non-finite
        w = torch.atanh((2 * x - 1) * self.tanh_scale)
        m, v = torch.zeros_like(w), torch.zeros_like(w)
        prev = torch.full_like(c, float("inf"))
        check_every = max(1, self.max_iterations // 10)
        rows = (-1,) + (1,) * (x.dim() - 1)
        for it in range(self.max_iterations):
            x_adv, l2, loss, grad, margin, finite = self._iterate(model, w, x, y, c)
            with torch.no_grad():
                reached = margin & finite & alive
                better = reached & (l2 < best_l2)
                best_l2.copy_(torch.where(better, l2, best_l2))
                best_adv.copy_(torch.where(better.view(rows), x_adv, best_adv))
                success |= reached
                w = self._adam(w.detach(), grad, m, v, it + 1)
            keep = finite
            if self.abort_early and it % check_every == 0:
                keep = keep & ~(loss.detach() > prev * 0.9999)
                prev = loss.detach()
            dropped += (alive & ~finite).sum()
            alive = alive & keep
            if it % check_every == check_every - 1 and not alive.any():
                break
        if dropped := int(dropped):
            log.warning("C&W: %d images gave non-finite logits or loss; they keep their best", dropped)
        return success

    def _iterate(
        self, model: nn.Module, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """One iteration's candidate at ``w``: ``(x_adv, l2, loss, grad of loss in w, margin reached,
        finite)`` per image, for the images ``x`` with labels ``y`` and constants ``c``."""
        w.requires_grad_(True)
        x_adv = (torch.tanh(w) + 1) / 2
        if self.snap > 0:  # straight-through: scored as snapped, optimised as it is
            with torch.no_grad():
                snapped = torch.where((x_adv - x).abs() < self.snap, x, x_adv)
            x_adv = x_adv + (snapped - x_adv).detach()
        logits = model(x_adv)
        real = logits.gather(1, y[:, None])[:, 0]
        other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
        l2 = (x_adv - x).pow(2).sum(tuple(range(1, x.dim())))
        loss = l2 + c * (real - other + self.confidence).clamp(min=0)
        (grad,) = torch.autograd.grad(loss.sum(), w)
        finite = torch.isfinite(loss) & torch.isfinite(logits).all(1)
        return x_adv, l2, loss, grad, other - real >= self.confidence, finite

    def _adam(self, w: torch.Tensor, grad: torch.Tensor, m: torch.Tensor, v: torch.Tensor, t: int) -> torch.Tensor:
        m.mul_(_BETA1).add_(grad, alpha=1 - _BETA1)
        v.mul_(_BETA2).addcmul_(grad, grad, value=1 - _BETA2)
        step = self.lr * (1 - _BETA2**t) ** 0.5 / (1 - _BETA1**t)
        return w - step * m / (v.sqrt() + _EPS)


# The efficient setting (docs/attacks.md): the paper states only confidence 5; this reaches the L2 of
# Carlini's 9 x 1,000 iterations at about 1/25 of its forward passes, with no start-offset fingerprint.
EFFICIENT_CW = dict(c_init=2.0, binary_search_steps=3, max_iterations=100, lr=0.1, tanh_scale=0.999, snap=0.002)
