"""Adversarial copies of a dataset made on a surrogate, cached one tensor file per set."""

import logging
import time
from pathlib import Path

import torch
from torch import nn

from advlit.attacks import Attack, run_attack
from advlit.study.cache import cache_root, content_key, load_tensors, locked, save_tensors
from advlit.study.controls import NOISE_SEED, matched_noise

log = logging.getLogger(__name__)


def set_path(
    surrogate_key: str, attack_name: str, attack: Attack, split: str, data_digest: str, cache_dir: str | None
) -> tuple[str, Path]:
    """The set's cache key and file."""
    description = {"surrogate": surrogate_key, "attack": attack_name, "params": attack.params(), "split": split}
    key = content_key({**description, "data": data_digest})
    return key, cache_root(cache_dir) / "adversarial" / f"{split}-{attack_name}-{key}.pt"


def load_or_make(
    surrogate: nn.Module,
    surrogate_key: str,
    attack_name: str,
    attack: Attack,
    split: str,
    x: torch.Tensor,
    y: torch.Tensor,
    data_digest: str,
    cache_dir: str | None = None,
    batch_size: int | None = None,
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(x_adv, x_noise)`` (on ``x.device``) of ``attack`` on ``surrogate`` for the set ``(x, y)``.

    ``x_noise`` is the matched-noise control of ``x_adv`` (:mod:`advlit.study.controls`), made for
    the test split only (None for the training split, which no control is scored on).

    Named by the surrogate's key, the attack and its parameters, the split and the data; made in
    batches on ``x``'s device the first time (progress bar), then loaded. A file that fails its
    checks (shape, dtype, stored hash) is made again with a warning. ``batch_size`` None picks
    1000 on a GPU and 100 on the CPU.
    """
    batch_size = batch_size or (1000 if x.device.type == "cuda" else 100)
    key, path = set_path(surrogate_key, attack_name, attack, split, data_digest, cache_dir)
    controls = split == "test"
    meta = {"key": key, "attack": attack_name, "params": attack.params(), "split": split, "shape": list(x.shape),
            "noise_seed": NOISE_SEED if controls else None}  # fmt: skip
    with locked(path):
        stored = load_tensors(path, meta)
        if stored is not None and all(stored[k].shape == x.shape and stored[k].dtype == x.dtype for k in stored):
            log.info("%s set's %s examples loaded from the cache (%s)", split, attack_name, path.name)
            return stored["x_adv"].to(x.device), stored["x_noise"].to(x.device) if controls else None
        log.info(
            "making the %s set's %s examples on surrogate %s (cached as %s)", split, attack_name, surrogate_key, path
        )
        start = time.perf_counter()
        x_adv = run_attack(attack, surrogate, x, y, batch_size, progress, desc=f"{attack_name} on {split} set")
        x_noise = torch.cat([matched_noise(attack, x[i : i + 10_000], x_adv[i : i + 10_000])
                             for i in range(0, len(x), 10_000)]) if controls else None  # fmt: skip
        save_tensors({"x_adv": x_adv, **({"x_noise": x_noise} if controls else {})}, meta, path)
        log.info("made the %s set's %s examples in %.0f s", split, attack_name, time.perf_counter() - start)
    return x_adv, x_noise
