"""Batched attacks: ``attack(model, x, y) -> x_adv``, and a registry of them by name."""

from typing import Literal

from advlit.attacks.base import Attack, frozen, run_attack
from advlit.attacks.carlini_wagner import CarliniWagnerL2
from advlit.attacks.diverse import DiverseFGSM
from advlit.attacks.fgsm import FGSM
from advlit.attacks.jsma import JSMA
from advlit.attacks.mifgsm import MIFGSM
from advlit.attacks.peers import TorchAttacks
from advlit.attacks.pgd import PGD
from advlit.runtime.errors import ConfigError

AttackName = Literal["fgsm", "pgd", "mifgsm", "di_fgsm", "ti_fgsm", "jsma", "jsma_pairs", "cw", "torchattacks"]


class JSMAPairs(JSMA):
    """JSMA with Papernot's pixel-pair rule (as cleverhans), under its own name so that a run can
    compare it with the paper's one-pixel rule (``jsma``)."""

    def __init__(self, theta: float = 1.0, gamma: float = 0.2, target: str = "random", seed: int = 0,
                 working_batch: int | None = None) -> None:  # fmt: skip
        super().__init__(theta, gamma, target, "pairs", seed, working_batch)


class TIFGSM(DiverseFGSM):
    """TI-FGSM under its own name: the gradient smoothed by a 5 x 5 Gaussian (our reading for 28-pixel
    images), no input diversity; ``decay`` 1.0 gives its momentum form."""

    def __init__(self, eps: float = 0.2, steps: int = 10, decay: float = 0.0, diversity_prob: float = 0.0,
                 resize_rate: float = 1.1, kernel_size: int = 5, sigma: float = 0.0,
                 seed: int = 0) -> None:  # fmt: skip
        super().__init__(eps, steps, decay, diversity_prob, resize_rate, kernel_size, sigma, seed)


ATTACKS: dict[str, type[Attack]] = {
    "fgsm": FGSM,
    "pgd": PGD,
    "mifgsm": MIFGSM,
    "di_fgsm": DiverseFGSM,
    "ti_fgsm": TIFGSM,
    "jsma": JSMA,
    "jsma_pairs": JSMAPairs,
    "cw": CarliniWagnerL2,
    "torchattacks": TorchAttacks,
}


def build_attack(name: str, **params) -> Attack:
    """An attack by registry name with its hyperparameters; an unknown name, parameter or value is
    a ConfigError naming it."""
    if name not in ATTACKS:
        raise ConfigError(f"attack {name!r} is unknown; choose one of {sorted(ATTACKS)}")
    try:
        return ATTACKS[name](**params)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"attack {name!r} with {params}: {err}") from err


def build_attacks(names: list[str], params: dict[str, dict], setting: str) -> dict[str, Attack]:
    """The named attacks with their parameters; a ConfigError for a repeated name or parameters of
    an attack that does not exist (a typo would otherwise run the defaults silently)."""
    if len(set(names)) != len(names):
        raise ConfigError(f"{setting}={names} names an attack twice")
    unknown = sorted(set(params) - set(ATTACKS))
    if unknown:
        raise ConfigError(f"attack_params names unknown attacks {unknown}; choose among {sorted(ATTACKS)}")
    return {name: build_attack(name, **params.get(name, {})) for name in names}


__all__ = [
    "ATTACKS",
    "Attack",
    "AttackName",
    "CarliniWagnerL2",
    "DiverseFGSM",
    "FGSM",
    "JSMA",
    "JSMAPairs",
    "MIFGSM",
    "PGD",
    "TIFGSM",
    "TorchAttacks",
    "build_attack",
    "build_attacks",
    "frozen",
    "run_attack",
]
