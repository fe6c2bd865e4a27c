"""Adversarial copies of a dataset made on a surrogate, cached one tensor file per set."""

import logging
import shutil
import time
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from advlit.attacks import Attack, run_attack
from advlit.runtime.devices import float_settings
from advlit.runtime.progress import duration
from advlit.study.cache import (
    cache_root,
    content_key,
    load_tensors,
    locked,
    made_seconds,
    record_made,
    save_tensors,
    weights_digest,
)
from advlit.study.controls import NOISE_SEED, controls_key, matched_noise

log = logging.getLogger(__name__)


class AdversarialSet(NamedTuple):
    """A set's examples, its matched-noise control (test sets only), and the seconds its making took."""

    x_adv: torch.Tensor
    x_noise: torch.Tensor | None
    made_s: float | None


# The digest of the weights of the surrogate a set was made on, in the set's meta: a surrogate made
# again under the same key (its cache entry deleted, another device's training) never reuses the sets
# of the old one. Entries written before it existed carry none and are still read.
WEIGHTS = "surrogate_weights"

PART_IMAGES = 5_000  # a set in the making is saved every this many images, so a killed run resumes


def parts_folder(path: Path) -> Path:
    """Where the finished parts of the set cached at ``path`` wait while it is being made."""
    return path.with_name(path.stem + ".parts")


def part_spans(n: int) -> list[tuple[int, int]]:
    """The ``(start, end)`` image spans a set of ``n`` images is made in."""
    return [(a, min(a + PART_IMAGES, n)) for a in range(0, n, PART_IMAGES)]


def part_path(path: Path, start: int, end: int) -> Path:
    """The file of the part holding images ``start`` to ``end`` of the set cached at ``path``."""
    return parts_folder(path) / f"{start}-{end}.pt"


def parts_done(path: Path, n: int) -> int:
    """How many of the ``n`` images of the set at ``path`` have a part file (for the plan; each part's
    content is checked when it is loaded)."""
    return sum(b - a for a, b in part_spans(n) if part_path(path, a, b).is_file())


def make_in_parts(
    attack: Attack, surrogate: nn.Module, x: torch.Tensor, y: torch.Tensor, meta: dict, path: Path,
    batch_size: int, progress: bool, desc: str,
) -> torch.Tensor:  # fmt: skip
    """``x_adv`` of the whole set, made :data:`PART_IMAGES` images at a time, each part saved (and
    checked like any cache entry) so that a killed run makes only the parts it lacks. A ``batch_consistent``
    attack's parts give the set one pass would; the folder goes once the set is whole."""
    spans = part_spans(len(x))
    parts, made_s = [], []
    for i, (a, b) in enumerate(spans, 1):
        file, part_meta = part_path(path, a, b), {**meta, "part": [a, b]}
        stored = load_tensors(file, part_meta, frozenset({WEIGHTS}))
        if stored is None or stored["x_adv"].shape != x[a:b].shape:
            label, start = f"{desc} (part {i}/{len(spans)})", time.perf_counter()
            part = run_attack(attack, surrogate, x[a:b], y[a:b], batch_size, progress, label)
            save_tensors({"x_adv": part}, part_meta, file)
            made_s.append(time.perf_counter() - start)
            record_made(file, made_s[-1])
            stored = {"x_adv": part}
            left = sum(not part_path(path, c, d).exists() for c, d in spans[i:])
            log.info(
                "%s: part %d/%d (images %d-%d) made in %s; %d to make, about %s left", desc, i, len(spans), a, b,
                duration(made_s[-1]), left, duration(left * sum(made_s) / len(made_s)),
            )  # fmt: skip
        else:
            log.info("%s: part %d/%d (images %d-%d) loaded from an unfinished run", desc, i, len(spans), a, b)
        parts.append(stored["x_adv"].to(x.device, x.dtype))
    return torch.cat(parts)


def attack_batch_size(batch_size: int | None, device: torch.device) -> int:
    """The images per attack batch: ``batch_size``, or None's default, 1000 on a GPU and 100 on the CPU."""
    return batch_size or (1000 if device.type == "cuda" else 100)


def set_path(
    surrogate_key: str, attack_name: str, attack: Attack, split: str, data_digest: str, cache_dir: str | None,
    batch_size: int | None = None,
) -> tuple[str, Path]:  # fmt: skip
    """The set's cache key and file. A test set's key holds its controls' version (training sets
    have no controls, so a new kind of control leaves them and the surrogates' keys as they are).
    The key of an attack that is not ``batch_consistent`` holds the ``batch_size`` it is made with
    (required then; other attacks' keys leave it out, as their sets do not depend on it)."""
    description = {"surrogate": surrogate_key, "attack": attack_name, "params": attack.params(), "split": split}
    if split == "test":
        description["controls"] = controls_key(attack)
    if not attack.batch_consistent:
        if batch_size is None:
            raise ValueError(f"{attack!r} draws per batch: its set's key needs the batch size")
        description["batch_size"] = batch_size
    key = content_key({**description, "data": data_digest})
    return key, cache_root(cache_dir) / "adversarial" / f"{split}-{attack_name}-{key}.pt"


def set_meta(key: str, attack_name: str, attack: Attack, split: str, x: torch.Tensor, weights: str) -> dict:
    """What a cached set of ``attack`` on the images ``x`` records and is checked against when loaded:
    its key, the attack and its parameters, the split, the shape, the noise seed of its controls (test
    split only), the surrogate's ``weights`` digest, and (never compared) the device it was made on."""
    return {"key": key, "attack": attack_name, "params": attack.params(), "split": split, "shape": list(x.shape),
            "noise_seed": NOISE_SEED if split == "test" else None, WEIGHTS: weights,
            "made_on": float_settings(x.device)}  # fmt: skip


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
    weights: str | None = None,
) -> AdversarialSet:
    """``(x_adv, x_noise, made_s)`` (on ``x.device``) of ``attack`` on ``surrogate`` for the set ``(x, y)``.

    ``x_noise`` is the matched-noise control of ``x_adv`` (:mod:`advlit.study.controls`), made for
    the test split only (None for the training split, which no control is scored on).

    Named by the surrogate's key, the attack and its parameters, the split and the data (and the
    batch size, for an attack that is not ``batch_consistent``); made in
    batches on ``x``'s device the first time (progress bar), then loaded. A file that fails its
    checks (shape, dtype, stored hash) is made again with a warning. ``batch_size`` None picks
    1000 on a GPU and 100 on the CPU. ``weights``: the surrogate's :func:`weights_digest` where the
    caller has it (:class:`Surrogate` carries it), hashed here otherwise.
    """
    batch_size = attack_batch_size(batch_size, x.device)
    key, path = set_path(surrogate_key, attack_name, attack, split, data_digest, cache_dir, batch_size)
    controls = split == "test"
    meta = set_meta(key, attack_name, attack, split, x, weights or weights_digest(surrogate))
    with locked(path):
        stored = load_tensors(path, meta, frozenset({WEIGHTS}))
        if stored is not None and all(stored[k].shape == x.shape and stored[k].dtype == x.dtype for k in stored):
            log.info("%s set's %s examples loaded from the cache (%s)", split, attack_name, path.name)
            shutil.rmtree(parts_folder(path), ignore_errors=True)  # left behind by a kill after the set was saved
            x_noise = stored["x_noise"].to(x.device) if controls else None
            return AdversarialSet(stored["x_adv"].to(x.device), x_noise, made_seconds(path))
        log.info(
            "making the %s set's %s examples on surrogate %s (cached as %s)", split, attack_name, surrogate_key, path
        )
        start = time.perf_counter()
        desc = f"{attack_name} on {split} set"
        if len(x) > PART_IMAGES:
            x_adv = make_in_parts(attack, surrogate, x, y, meta, path, batch_size, progress, desc)
            # each part's own time, killed runs' parts included
            attack_s = sum(made_seconds(part_path(path, a, b)) or 0.0 for a, b in part_spans(len(x)))
        else:
            x_adv = run_attack(attack, surrogate, x, y, batch_size, progress, desc=desc)
            attack_s = time.perf_counter() - start
        noise_start = time.perf_counter()
        x_noise = torch.cat([matched_noise(attack, x[i : i + 10_000], x_adv[i : i + 10_000])
                             for i in range(0, len(x), 10_000)]) if controls else None  # fmt: skip
        save_tensors({"x_adv": x_adv, **({"x_noise": x_noise} if controls else {})}, meta, path)
        made_s = attack_s + time.perf_counter() - noise_start
        record_made(path, made_s)
        shutil.rmtree(parts_folder(path), ignore_errors=True)
        log.info("made the %s set's %s examples in %.0f s", split, attack_name, time.perf_counter() - start)
    return AdversarialSet(x_adv, x_noise, made_s)
