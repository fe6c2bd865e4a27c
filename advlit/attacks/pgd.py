"""Projected Gradient Descent (L_inf)."""

import torch
from torch import nn

from advlit.attacks.base import Attack, check_range
from advlit.attacks.fgsm import input_gradient
from advlit.attacks.rng import image_keys, uniform
from advlit.runtime.errors import ConfigError


class PGD(Attack):
    """PGD, Madry et al. 2018 (https://arxiv.org/abs/1706.06083).

    Untargeted L_inf attack: from a random start in the eps-ball, ``steps`` times
    ``x' = proj_eps(x' + alpha * sign(grad_x CE(f(x'), y)))``, clipped to [0, 1].
    The random start is drawn from each image's content and ``seed``.

    Args:
        eps: L_inf radius in pixel units.
        alpha: step size.
        steps: number of gradient steps.
        random_start: start from a uniform point of the ball instead of ``x``.
        seed: seed of the random start.
    """

    def __init__(
        self, eps: float = 0.3, alpha: float = 0.01, steps: int = 40, random_start: bool = True, seed: int = 0
    ) -> None:
        check_range("eps", eps, 0.0, 1.0)
        check_range("alpha", alpha, 0.0, 1.0)
        if steps < 0:
            raise ConfigError(f"steps={steps} must be >= 0")
        self.eps, self.alpha, self.steps, self.random_start, self.seed = (
            float(eps),
            float(alpha),
            steps,
            random_start,
            seed,
        )

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x_adv = x
        if self.random_start:
            noise = uniform(image_keys(x, self.seed), tuple(x.shape[1:])).to(x.dtype)
            x_adv = (x + (2 * noise - 1) * self.eps).clamp(0, 1)
        for _ in range(self.steps):
            x_adv = x_adv + self.alpha * input_gradient(model, x_adv, y).sign()
            x_adv = (x + (x_adv - x).clamp(-self.eps, self.eps)).clamp(0, 1)
        return x_adv
