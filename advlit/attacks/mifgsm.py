"""Momentum Iterative FGSM (L_inf), an attack made to transfer."""

import torch
from torch import nn

from advlit.attacks.base import Attack, check_range
from advlit.attacks.fgsm import input_gradient
from advlit.runtime.errors import ConfigError


class MIFGSM(Attack):
    """MI-FGSM, Dong et al. 2018 (https://arxiv.org/abs/1710.06081).

    Untargeted L_inf attack built to transfer to other networks: ``steps`` steps of size
    ``alpha = eps / steps`` along the sign of an accumulated gradient
    ``g <- decay * g + grad / ||grad||_1`` (each image's own L1 norm), projected onto the eps-ball
    and [0, 1]. Deterministic: it draws nothing at random. Shapes: ``x`` ``(N, C, H, W)`` in
    [0, 1], ``y`` ``(N,)``.

    Args:
        eps: the L_inf budget in pixel units.
        steps: number of iterations (``steps`` x ``alpha`` = ``eps``).
        decay: momentum factor mu (1.0 in the paper).
    """

    norm = "changes"  # the matched-noise control: its own per-pixel changes, moved (advlit.study.controls)

    def __init__(self, eps: float = 0.2, steps: int = 10, decay: float = 1.0) -> None:
        check_range("eps", eps, 0.0, 1.0)
        check_range("decay", decay, 0.0, 10.0)
        if steps < 1:
            raise ConfigError(f"steps={steps} must be >= 1")
        self.eps, self.steps, self.decay = float(eps), steps, float(decay)

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        alpha = self.eps / self.steps
        x_adv, g = x, torch.zeros_like(x)
        for _ in range(self.steps):
            grad = input_gradient(model, x_adv, y)
            l1 = grad.abs().flatten(1).sum(1).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1))  # (N, 1, 1, 1)
            g = self.decay * g + grad / l1
            x_adv = x_adv + alpha * g.sign()
            x_adv = (x + (x_adv - x).clamp(-self.eps, self.eps)).clamp(0, 1)
        return x_adv
