"""Surrogate networks (the defender's source, the attacker's own), trained once and cached."""

import dataclasses
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import torch
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.strategies import SingleDeviceStrategy
from lightning.pytorch.utilities import rank_zero_only
from torch import nn
from torchmetrics import Metric

from advlit.data.augment import Augment
from advlit.data.tensor_data import TensorData
from advlit.models.classifier import ARCHS, Classifier, build_network
from advlit.runtime.checkpoints import newest_loadable
from advlit.runtime.devices import float_settings
from advlit.runtime.errors import ConfigError
from advlit.runtime.progress import progress_bar
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

log = logging.getLogger(__name__)
Role = Literal["defender", "attacker"]


class Surrogate(NamedTuple):
    """A surrogate in eval mode, its cache key, the seconds its training took (None: not noted), and
    the SHA-256 of its weights (:func:`weights_digest`)."""

    net: nn.Module
    key: str
    made_s: float | None
    weights: str


@dataclass(frozen=True)
class SurrogateSpec:
    """Everything that determines a surrogate's weights (with the training data)."""

    arch: str = "lenet5"
    augment: bool = True
    seed: int = 0
    epochs: int = 50
    role: Role = "defender"
    lr: float = 1e-4
    batch_size: int = 128

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"arch={self.arch!r} is unknown; choose one of {sorted(ARCHS)}")
        if self.role not in ("defender", "attacker"):
            raise ConfigError(f"role={self.role!r} must be 'defender' or 'attacker'")
        if self.epochs < 1:
            raise ConfigError(f"{self.role} surrogate epochs={self.epochs} must be >= 1")

    def same_network(self, other: "SurrogateSpec") -> bool:
        """True when both specs train the same network on the same batches, roles aside.

        Epochs do not count: a network trained for fewer epochs is a snapshot of the other's run.
        """
        fields = ("arch", "augment", "seed", "lr")
        return all(getattr(self, f) == getattr(other, f) for f in fields)


def check_distinct(source: SurrogateSpec, attacker: SurrogateSpec, defended: SurrogateSpec | None = None) -> None:
    """A ConfigError when the attacker would train the defender's source network, or the defended
    network itself (``defended``: the run's network when it trains on clean images alone from
    one seed for init and data, else None: then no surrogate can coincide with it)."""
    if source.same_network(attacker):
        raise ConfigError(
            f"attacker (seed {attacker.seed}, augment {attacker.augment}) is the same network as the defender's "
            "source; give the attacker another seed"
        )
    if defended is not None and defended.same_network(attacker):
        raise ConfigError(
            f"attacker (seed {attacker.seed}, augment {attacker.augment}) is the same network as the defended one "
            "(seed_everything and data.seed equal its seed, clean training): a white-box attack; give it another seed"
        )


def defended_spec(
    arch: str, lr: float, augment: bool, data_seed: int, train_attacks: list, init_seed
) -> SurrogateSpec | None:
    """The defended network as a surrogate spec when a surrogate could rebuild it exactly (clean
    training, ``seed_everything`` equal to ``data.seed``); else None."""
    if train_attacks or init_seed is None or int(init_seed) != data_seed:
        return None
    return SurrogateSpec(arch, augment, data_seed, 1, "defender", lr)


def surrogate_key(spec: SurrogateSpec, augmenter: Augment, data_digest: str) -> str:
    """The cache key: the spec, the augmentation settings in force and the training data."""
    aug = dataclasses.asdict(augmenter) if spec.augment else None
    return content_key({"surrogate": dataclasses.asdict(spec), "augmentation": aug, "data": data_digest})


class TrainingClock(Callback):
    """Notes the training seconds so far beside the checkpoints after every epoch; a resumed
    training adds to the note it finds (:func:`total`)."""

    def __init__(self, path: Path) -> None:
        self.path, self.before = path, made_seconds(path) or 0.0

    def on_train_start(self, trainer: Trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def total(self) -> float:
        return self.before + time.perf_counter() - getattr(self, "start", time.perf_counter())

    def on_train_epoch_end(self, trainer: Trainer, pl_module) -> None:
        record_made(self.path, self.total())


def _train(
    spec: SurrogateSpec, x: torch.Tensor, y: torch.Tensor, augmenter: Augment, progress: bool, resume_dir: Path
) -> nn.Module:
    """Train with advlit's Classifier on :class:`TensorData` in a nested single-device Trainer.

    A checkpoint after every epoch goes to ``resume_dir``, and training resumes from the newest one
    there (a killed training); the data order and augmentation depend on (seed, epoch, batch) only,
    so a resumed network is the one an uninterrupted training gives.
    """
    device = x.device
    rank, global_seed = rank_zero_only.rank, os.environ.get("PL_GLOBAL_SEED")
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        seed_everything(spec.seed, verbose=False)
        module = Classifier(spec.arch, lr=spec.lr)
        for metric in module.modules():  # never sync with the other ranks of an outer DDP run
            if isinstance(metric, Metric):
                metric.sync_on_compute = False
        # no prepare_data: the nested Trainer runs no barrier that an outer DDP run's ranks would join
        data = TensorData(spec.batch_size, 1000, spec.seed, augmenter, spec.augment)
        data.train_x, data.train_y, data.test_x, data.test_y = x, y, x[:1], y[:1]
        every_epoch = ModelCheckpoint(dirpath=resume_dir, save_top_k=1, enable_version_counter=False)
        clock = TrainingClock(resume_dir / "training")
        trainer = Trainer(
            accelerator="gpu" if device.type == "cuda" else "cpu",
            devices=1,
            strategy=SingleDeviceStrategy(device),
            max_epochs=spec.epochs, logger=False, enable_model_summary=False,
            enable_progress_bar=progress, limit_val_batches=0, num_sanity_val_steps=0,
            callbacks=[every_epoch, clock, *([progress_bar()] if progress else [])],
        )  # fmt: skip
        ckpt = newest_loadable(resume_dir) if resume_dir.is_dir() else None
        if ckpt is not None:
            log.info("resuming the %s's surrogate from %s", spec.role, ckpt)
        try:
            trainer.fit(module, data, ckpt_path=ckpt)
        finally:  # a nested Trainer must not change who logs in the outer run, nor its recorded seed
            rank_zero_only.rank = rank
            if global_seed is None:
                os.environ.pop("PL_GLOBAL_SEED", None)
            else:
                os.environ["PL_GLOBAL_SEED"] = global_seed
    return module.net


def surrogate_path(
    spec: SurrogateSpec, augmenter: Augment, data_digest: str, cache_dir: str | None
) -> tuple[str, Path]:
    """The surrogate's cache key and file."""
    key = surrogate_key(spec, augmenter, data_digest)
    return key, cache_root(cache_dir) / "surrogates" / f"{spec.role}-{spec.arch}-{key}.pt"


def cached_network(path: str | Path, arch: str | None = None) -> nn.Module:
    """The network of a surrogate's cache file in eval mode on the CPU (``arch`` None: the one its
    spec names), for inspecting cached networks outside a run."""
    stored = torch.load(path, map_location="cpu", weights_only=True)
    net = build_network(arch or stored["meta"]["spec"]["arch"])
    net.load_state_dict(stored["tensors"])
    return net.eval()


def load_or_train(
    spec: SurrogateSpec,
    x: torch.Tensor,
    y: torch.Tensor,
    augmenter: Augment,
    data_digest: str,
    cache_dir: str | None = None,
    progress: bool = True,
) -> Surrogate:
    """The surrogate for ``spec`` on ``x.device`` in eval mode, its cache key and training time.

    Trained on the clean set ``(x, y)`` the first time (resuming a killed training from its last
    epoch), then loaded from the cache. Processes that share the cache wait for the one that trains it.
    """
    key, path = surrogate_path(spec, augmenter, data_digest, cache_dir)
    meta = {"key": key, "spec": dataclasses.asdict(spec), "made_on": float_settings(x.device)}
    resume_dir = path.with_name(path.stem + ".training")  # its checkpoints while it trains
    with locked(path):
        state = load_tensors(path, meta)
        if state is None:
            log.info("training the %s's surrogate %s (cached as %s)", spec.role, spec, path)
            start = time.perf_counter()
            state = _train(spec, x, y, augmenter, progress, resume_dir).state_dict()
            save_tensors(state, meta, path)
            record_made(path, made_seconds(resume_dir / "training") or time.perf_counter() - start)
            log.info("trained the %s's surrogate in %.0f s", spec.role, time.perf_counter() - start)
        else:
            log.info("%s's surrogate loaded from the cache (%s)", spec.role, path.name)
        shutil.rmtree(resume_dir, ignore_errors=True)
    net = build_network(spec.arch)
    net.load_state_dict(state)
    return Surrogate(net.to(x.device).eval(), key, made_seconds(path), weights_digest(net))
