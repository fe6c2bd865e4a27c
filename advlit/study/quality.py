"""How good an adversarial set is: white-box success on the network that made it, and its size."""

import torch
from torch import nn


@torch.no_grad()
def predictions(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """The model's predicted class per image ``(N,)``, in batches."""
    return torch.cat([model(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


def _summary(values: torch.Tensor) -> dict[str, float | None]:
    if len(values) == 0:
        return {"mean": None, "median": None}
    values = values.double()
    return {"mean": values.mean().item(), "median": values.quantile(0.5).item()}  # even count: mean of the middle two


def set_quality(maker: nn.Module, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor) -> dict:
    """Quality of ``x_adv`` against ``maker`` (the network it was made on).

    ``success``: the share of the images that ``maker`` classifies right whose adversarial version it
    gets wrong (white-box success); ``l0``/``l2``/``linf``: mean and median over those successes
    (L0 counts pixels that differ at all); ``budget``: mean L0/L2/L_inf over every changed image,
    fooled or not (what a matched-noise control spends); ``unchanged``: the share of images left
    exactly as they were.
    """
    right = predictions(maker, x) == y
    fooled = right & (predictions(maker, x_adv) != y)
    diff = (x_adv - x).flatten(1)
    hit = diff[fooled]
    return {
        "images": len(x),
        "maker_accuracy": right.double().mean().item(),
        "success": (fooled.sum() / right.sum().clamp_min(1)).item(),
        "l0": _summary((hit != 0).sum(1)),
        "l2": _summary(hit.norm(dim=1)),
        "linf": _summary(hit.abs().amax(1)) if len(hit) else _summary(hit.sum(1)),
        "budget": _budget(diff),
        "unchanged": (diff == 0).all(1).double().mean().item(),
    }


def _budget(diff: torch.Tensor) -> dict[str, float | None]:
    changed = diff[(diff != 0).any(1)]
    if len(changed) == 0:
        return {"l0": None, "l2": None, "linf": None}
    return {
        "l0": (changed != 0).sum(1).double().mean().item(),
        "l2": changed.norm(dim=1).double().mean().item(),
        "linf": changed.abs().amax(1).double().mean().item(),
    }
