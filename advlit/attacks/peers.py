"""Attacks from other libraries as advlit attacks (``pip install -e ".[peers]"``)."""

from typing import Literal

import torch
from torch import nn

from advlit.attacks.base import Attack
from advlit.runtime.errors import ConfigError


def _torchattacks():
    try:
        import torchattacks
    except ImportError as err:
        raise ConfigError(f'the torchattacks adapter needs torchattacks: pip install -e ".[peers]" ({err})') from None
    return torchattacks


class TorchAttacks(Attack):
    """Any `torchattacks <https://github.com/Harry24k/adversarial-attacks-pytorch>`_ attack, by class name,
    under advlit's rules: pixels in [0, 1] in and out (advlit's networks normalise inside, as
    torchattacks expects by default), labels checked, the model in eval mode with its parameters
    frozen and left as it was found, and randomness seeded.

    Where torchattacks differs: it switches the model to eval mode itself and back to train mode
    only if it was training (advlit's freezing covers the rest: gradients, parameters); its random
    draws (PGD's start, ...) come from torch's global generator, seeded here per call with ``seed``,
    so they depend on the batch an image is in, where advlit's own attacks draw per image.

    Args:
        attack: the class name in ``torchattacks`` (``PGD``, ``VMIFGSM``, ``DIFGSM``, ``Square``, ...).
        params: its keyword arguments (``eps``, ``alpha``, ``steps``, ...; not the model).
        norm: the norm of its budget, for the matched-noise control: ``linf`` (sign noise at its L_inf
            on every pixel, as for FGSM), ``l2``, ``l0``, or ``changes`` (its own per-pixel changes
            moved: for iterative L_inf attacks, which leave many pixels under eps).
        seed: seed of its random draws (per call).
    """

    batch_consistent = False  # its draws are per batch: a cached set is keyed by its batch size

    def __init__(
        self,
        attack: str = "PGD",
        params: dict | None = None,
        norm: Literal["linf", "l2", "l0", "changes"] = "linf",
        seed: int = 0,
    ) -> None:
        torchattacks = _torchattacks()
        cls = getattr(torchattacks, attack, None)
        if not (isinstance(cls, type) and issubclass(cls, torchattacks.attack.Attack)):
            raise ConfigError(f"torchattacks has no attack {attack!r}")
        if norm not in ("linf", "l2", "l0", "changes"):
            raise ConfigError(f"norm={norm!r} must be linf, l2, l0 or changes")
        self.attack, self.params_, self.norm, self.seed = attack, dict(params or {}), norm, seed
        try:
            cls(nn.Linear(1, 1), **self.params_)  # its own checks of the parameters, before any work
        except TypeError as err:
            raise ConfigError(f"torchattacks.{attack} with {self.params_}: {err}") from None

    def params(self) -> dict:
        return {
            "attack": self.attack,
            "params": dict(sorted(self.params_.items())),
            "norm": self.norm,
            "seed": self.seed,
        }

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        cls = getattr(_torchattacks(), self.attack)
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            torch.manual_seed(self.seed)
            x_adv = cls(model, **self.params_)(x, y)
        return x_adv.to(x.dtype).clamp(0, 1)
