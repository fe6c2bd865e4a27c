"""Fast Gradient Sign Method."""

import torch
from torch import nn
from torch.nn import functional as F

from advlit.attacks.base import Attack, check_labels, check_range


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient of the summed cross-entropy with respect to ``x`` (each image's own, unscaled)."""
    x = x.detach().requires_grad_(True)
    logits = model(x)
    check_labels(y, logits.shape[1])
    (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), x)
    return grad


class FGSM(Attack):
    """FGSM, Goodfellow et al. 2015 (https://arxiv.org/abs/1412.6572).

    Untargeted L_inf attack in one step: ``x' = clip(x + eps * sign(grad_x CE(f(x), y)), 0, 1)``.
    Shapes: ``x`` ``(N, C, H, W)`` in [0, 1], ``y`` ``(N,)``.

    Args:
        eps: the L_inf budget in pixel units (the paper's 0.2).
    """

    def __init__(self, eps: float = 0.2) -> None:
        check_range("eps", eps, 0.0, 1.0)
        self.eps = float(eps)

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x + self.eps * input_gradient(model, x, y).sign()).clamp(0, 1)
