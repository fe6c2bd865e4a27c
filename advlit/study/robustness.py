"""Beyond the paper's black-box columns: white-box accuracy, the worst case per image, and the
gradient-masking check that compares them. Counts are exact across DDP ranks (each rank holds the
shard ``x[rank::world]``): each score is a tally ``(right, images)`` on the device, and
:func:`accuracies` sums every tally of an epoch over the ranks in one all_reduce."""

import logging

import torch
from lightning.pytorch import LightningModule, Trainer

from advlit.attacks import Attack

log = logging.getLogger(__name__)
WORST = "worst"  # <attacker>/worst: right under every one of the attacker's attacks
WHITEBOX = "whitebox"  # whitebox/<attack>: the attack run on the defended network itself
EIGHT_BIT_SUFFIX = "_8bit"  # <attacker>/<attack>_8bit: the set rounded to 8 bits (transfer.quantize)


def tally(correct: torch.Tensor) -> torch.Tensor:
    """``(right, images)`` of this rank's per-image correctness, as a float64 pair on its device."""
    return torch.stack([correct.sum().double(), torch.full((), float(len(correct)), dtype=torch.float64,
                                                            device=correct.device)])  # fmt: skip


def sum_over_ranks(trainer: Trainer, groups: dict[str, dict[str, torch.Tensor]]) -> dict[str, dict[str, list]]:
    """Every tensor of every group summed over the ranks in one all_reduce, read on the host once."""
    parts = [t.reshape(-1).double() for group in groups.values() for t in group.values()]
    if not parts:
        return {g: {} for g in groups}
    flat = iter(trainer.strategy.reduce(torch.cat(parts), reduce_op="sum").tolist())
    return {
        g: {name: [next(flat) for _ in range(t.numel())] for name, t in group.items()} for g, group in groups.items()
    }


def accuracies(summed: dict[str, list]) -> dict[str, float]:
    """``right / images`` of each summed tally."""
    return {name: right / images for name, (right, images) in summed.items()}


def whitebox_tallies(
    trainer: Trainer,
    pl_module: LightningModule,
    attacks: dict[str, Attack],
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
) -> dict[str, torch.Tensor]:
    """``whitebox/<attack>``: the defended network's tally under each attack made on itself, on
    ``x`` (the first test images, sharded over the ranks here)."""
    rank, world = trainer.global_rank, trainer.world_size
    xs, ys = x[rank::world], y[rank::world]
    out = {}
    for name, attack in attacks.items():
        correct = torch.zeros(len(xs), dtype=torch.bool, device=pl_module.device)
        for i in range(0, len(xs), batch_size):
            x_adv = attack(pl_module, xs[i : i + batch_size], ys[i : i + batch_size])
            with torch.no_grad():
                correct[i : i + batch_size] = pl_module(x_adv).argmax(1) == ys[i : i + batch_size]
        out[f"{WHITEBOX}/{name}"] = tally(correct)
    return out


def worst_and_subset_tallies(
    trainer: Trainer,
    correct: dict[str, torch.Tensor],
    attackers: list[str],
    attacks: dict[str, Attack],
    whitebox: dict[str, Attack],
    whitebox_images: int,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``<attacker>/worst``: right under every one of the attacker's attacks, over the whole test
    set; and each black-box set that has a white-box twin, scored on the white-box images alone.

    ``correct``: set name -> this rank's per-image correctness over its shard of the test set.
    """
    rank, world = trainer.global_rank, trainer.world_size
    mine = -(-(whitebox_images - rank) // world) if whitebox_images > rank else 0  # my shard's share of them
    worst, subset = {}, {}
    for attacker in attackers:
        sets = [f"{attacker}/{a}" for a in attacks]
        if sets:
            worst[f"{attacker}/{WORST}"] = tally(torch.stack([correct[s] for s in sets]).all(0))
        for a in whitebox:
            if a in attacks:
                subset[f"{attacker}/{a}"] = tally(correct[f"{attacker}/{a}"][:mine])
    return worst, subset


def gradient_masking(
    subset: dict[str, float], medians: dict[str, float], images: int, margin: float = 0.02
) -> dict[str, dict]:
    """Per black-box set with a white-box twin: both window medians on the same ``images``, and
    ``flag`` when the black-box attack hurts more than the white-box one by more than ``margin``, the
    sign of gradient masking (Tramer et al. 2018, https://arxiv.org/abs/1705.07204); a warning line
    for each flag."""
    out = {}
    for name, black in sorted(subset.items()):
        white = medians.get(f"{WHITEBOX}/{name.split('/')[1]}")
        if white is None:
            continue
        flag = black < white - margin
        out[name] = {"black_box_median": black, "white_box_median": white, "flag": flag}
        if flag:
            log.warning("gradient masking? %s black-box %.1f%% < white-box %.1f%% (window medians, same %d images)",
                        name, 100 * black, 100 * white, images)  # fmt: skip
    return out
