"""The attack protocol ``attack(model, x, y) -> x_adv`` and what every attack shares."""

import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

from advlit.runtime.errors import ConfigError

log = logging.getLogger(__name__)


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no parameter gradients inside; every flag restored on the way out."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in flags:
            p.requires_grad_(flag)


def check_range(name: str, value: float, low: float, high: float) -> None:
    """Raise a ConfigError naming ``name`` unless ``low <= value <= high``."""
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} must be in [{low}, {high}]")


def check_batch(x: torch.Tensor, y: torch.Tensor) -> None:
    """Raise a ValueError naming the argument unless ``x`` and ``y`` are a valid image batch."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"x must be a float tensor (N, C, H, W), got {getattr(x, 'shape', type(x))}")
    if x.numel() and (not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1):
        raise ValueError("x must hold finite pixels in [0, 1]")
    if not isinstance(y, torch.Tensor) or y.shape != (x.shape[0],) or y.dtype != torch.int64:
        raise ValueError(f"y must be an int64 tensor of shape ({x.shape[0]},), got {getattr(y, 'shape', type(y))}")
    if y.device != x.device:
        raise ValueError(f"y is on {y.device} but x on {x.device}")


def check_labels(y: torch.Tensor, num_classes: int) -> None:
    """Raise a ValueError unless every label is a class of the model."""
    if y.numel() and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"y must hold labels in [0, {num_classes - 1}], got [{int(y.min())}, {int(y.max())}]")


class Attack(ABC):
    """An attack is its hyperparameters; calling it perturbs a batch against a model.

    ``attack(model, x, y)`` returns ``x_adv`` with the shape, dtype and device of ``x`` and pixels
    in [0, 1]. The model is used in eval mode, with gradients on (also inside Lightning's
    inference mode), and is left exactly as it was found.

    ``batch_consistent``: whether an image's adversarial copy is the same whatever batch it is
    attacked in (advlit's own attacks draw their randomness per image). A cached set of an attack
    that is not is keyed by its batch size too.
    """

    batch_consistent: bool = True

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_batch(x, y)
        if len(x) == 0:
            return x.clone()
        with frozen(model), torch.inference_mode(False), torch.enable_grad():
            x, y = x.clone(), y.clone()  # tensors made under inference mode cannot enter autograd
            x_adv = self.perturb(model, x, y)
        return x_adv.detach().clamp_(0, 1)

    @abstractmethod
    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Return adversarial versions of a checked batch; the model is already frozen."""

    def params(self) -> dict:
        """The hyperparameters, as passed to ``__init__`` (for cache keys and logs)."""
        return dict(sorted(vars(self).items()))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


def fixed_shapes(x: torch.Tensor) -> bool:
    """Whether an iterative attack keeps finished images in its batch (masked) rather than dropping
    them: on a GPU, where reading the batch's size back would stall the device at every step."""
    return x.is_cuda


def run_attack(
    attack: Attack,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 1000,
    progress: bool = True,
    desc: str | None = None,
) -> torch.Tensor:
    """Attack a large set in batches of ``batch_size`` with a progress bar; returns ``x_adv``."""
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size} must be >= 1")
    out = torch.empty_like(x)
    with tqdm(total=len(x), desc=desc or repr(attack), unit="img", disable=not progress, leave=False) as bar:
        for start in range(0, len(x), batch_size):
            stop = start + batch_size
            out[start:stop] = attack(model, x[start:stop], y[start:stop])
            bar.update(len(out[start:stop]))
    return out
