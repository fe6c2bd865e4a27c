"""Transfer-oriented iterative FGSM: input diversity (DI), translation invariance (TI), momentum."""

import torch
import torch.nn.functional as F
from torch import nn

from advlit.attacks.base import Attack, check_range
from advlit.attacks.fgsm import input_gradient
from advlit.attacks.rng import image_keys, uniform
from advlit.runtime.errors import ConfigError


def diverse_inputs(x: torch.Tensor, u: torch.Tensor, resize_rate: float, prob: float) -> torch.Tensor:
    """Xie et al.'s input diversity, batched, one draw per image: with probability ``prob`` an image
    is resized to a random side ``r`` in ``[H, H * resize_rate)``, zero-padded at a random offset to
    ``H * resize_rate`` and (our reading for fixed-size networks such as LeNet5, whose classifier takes
    28 x 28 only) resized back to ``H``; one affine map and a bilinear sample per image.

    ``u``: uniforms ``(N, 4)`` (apply?, size, top, left)."""
    n, _, h, w = x.shape
    big = max(h, int(h * resize_rate))
    side = torch.floor(h + u[:, 1] * (big - h))  # the resized side r, in whole pixels
    top, left = torch.floor(u[:, 2] * (big - side + 1)), torch.floor(u[:, 3] * (big - side + 1))
    # output (normalised, [-1, 1] over the big canvas) -> input: x_in = (x_out * big/2 + big/2 - offset - r/2) * 2/r
    scale = big / side
    shift_x = (big - 2 * left - side) / side
    shift_y = (big - 2 * top - side) / side
    apply = u[:, 0] < prob
    one, zero = torch.ones_like(scale), torch.zeros_like(scale)
    theta = torch.stack(
        [torch.where(apply, scale, one), zero, torch.where(apply, shift_x, zero),
         zero, torch.where(apply, scale, one), torch.where(apply, shift_y, zero)], 1,
    ).view(n, 2, 3).to(x.dtype)  # fmt: skip
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    sampled = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return torch.where(apply.view(-1, 1, 1, 1), sampled, x)  # the others exactly as they were


def gaussian_kernel(size: int, sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A normalised ``(1, 1, size, size)`` Gaussian kernel (TI-FGSM's smoothing of the gradient)."""
    r = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    k = g[:, None] * g[None, :]
    return (k / k.sum()).view(1, 1, size, size)


class DiverseFGSM(Attack):
    """Iterative FGSM for transfer: DI-FGSM (Xie et al. 2019, https://arxiv.org/abs/1803.06978), TI-FGSM
    (Dong et al. 2019, https://arxiv.org/abs/1904.02884), and their momentum forms (MI, Dong et al. 2018).

    Each of ``steps`` steps (size ``eps / steps``) takes the gradient of the loss at the current
    image, seen through input diversity with probability ``diversity_prob`` (0: none), smooths it with
    a ``kernel_size`` Gaussian (1: none), accumulates it with momentum ``decay`` (0: none; MI's
    ``g <- decay * g + grad / ||grad||_1``), and steps along its sign, projected onto the eps-ball and
    [0, 1]. The random draws come from each image's content and ``seed``, one set per step, so an
    image's path does not depend on its batch. The model is left as it was. Shapes: ``x`` ``(N, C, H, W)``
    in [0, 1], ``y`` ``(N,)``.

    Args:
        eps: the L_inf budget in pixel units.
        steps: iterations.
        decay: momentum factor (0: DI/TI-FGSM without momentum; 1.0: MI's).
        diversity_prob: probability of input diversity per image and step (DI; 0.5 in Xie et al.).
        resize_rate: the largest resize, as a multiple of the side (330/299 = 1.1 in Xie et al.).
        kernel_size: side of TI's Gaussian kernel (odd; 1: no smoothing). 15 in Dong et al. for
            299-pixel images; our reading for 28-pixel MNIST: 5.
        sigma: the kernel's standard deviation in pixels (0: ``(kernel_size - 1) / 6``, Dong et al.'s
            ``gkern(kernlen, nsig=3)``, which spans +-3 standard deviations over the kernel).
        seed: seed of the diversity draws.
    """

    norm = "changes"  # the matched-noise control: its own per-pixel changes, moved (advlit.study.controls)

    def __init__(
        self,
        eps: float = 0.2,
        steps: int = 10,
        decay: float = 0.0,
        diversity_prob: float = 0.5,
        resize_rate: float = 1.1,
        kernel_size: int = 1,
        sigma: float = 0.0,
        seed: int = 0,
    ) -> None:
        check_range("eps", eps, 0.0, 1.0)
        check_range("decay", decay, 0.0, 10.0)
        check_range("diversity_prob", diversity_prob, 0.0, 1.0)
        check_range("resize_rate", resize_rate, 1.0, 2.0)
        check_range("sigma", sigma, 0.0, 100.0)
        if steps < 1:
            raise ConfigError(f"steps={steps} must be >= 1")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size={kernel_size} must be odd and >= 1")
        self.eps, self.steps, self.decay = float(eps), steps, float(decay)
        self.diversity_prob, self.resize_rate = float(diversity_prob), float(resize_rate)
        self.kernel_size, self.sigma, self.seed = kernel_size, float(sigma), seed

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        alpha = self.eps / self.steps
        draws = uniform(image_keys(x, self.seed), (self.steps, 4)) if self.diversity_prob > 0 else None
        kernel = None
        if self.kernel_size > 1:
            sigma = self.sigma or (self.kernel_size - 1) / 6
            kernel = gaussian_kernel(self.kernel_size, sigma, x.device, x.dtype).expand(x.shape[1], 1, -1, -1)
        x_adv, g = x, torch.zeros_like(x)
        for step in range(self.steps):
            if draws is None:
                grad = input_gradient(model, x_adv, y)
            else:
                grad = input_gradient(_Diverse(model, draws[:, step], self.resize_rate, self.diversity_prob), x_adv, y)
            if kernel is not None:
                grad = F.conv2d(grad, kernel, padding=self.kernel_size // 2, groups=x.shape[1])
            if self.decay > 0:
                l1 = grad.abs().flatten(1).sum(1).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1))
                grad = g = self.decay * g + grad / l1
            x_adv = x_adv + alpha * grad.sign()
            x_adv = (x + (x_adv - x).clamp(-self.eps, self.eps)).clamp(0, 1)
        return x_adv


class _Diverse(nn.Module):
    """``model`` seen through one step's input diversity (the gradient flows through the resampling)."""

    def __init__(self, model: nn.Module, u: torch.Tensor, resize_rate: float, prob: float) -> None:
        super().__init__()
        self.model, self.u, self.resize_rate, self.prob = model, u, resize_rate, prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(diverse_inputs(x, self.u, self.resize_rate, self.prob))
