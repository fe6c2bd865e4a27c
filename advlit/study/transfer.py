"""The transfer-evaluation callback: the defender scored on the attacker's black-box test sets."""

import dataclasses
import json
import os
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from torchvision.utils import make_grid

from advlit.attacks import AttackName, build_attack
from advlit.errors import ConfigError
from advlit.study import adversarial_sets, surrogate
from advlit.study.cache import atomic_write, tensor_digest
from advlit.study.surrogate import SurrogateSpec
from advlit.study.window import window_stats


def check_window(start: int, end: int | None, max_epochs: int | None) -> int:
    """The window's last epoch; a ConfigError unless ``1 <= start <= end <= max_epochs``."""
    end = end if end is not None else max_epochs
    if end is None or max_epochs is None or max_epochs < 1:
        raise ConfigError("the epoch window needs trainer.max_epochs (or transfer.window_end) to be set")
    if not 1 <= start <= end <= max_epochs:
        raise ConfigError(f"epoch window {start}-{end} must lie within the run's epochs 1-{max_epochs}")
    return end


class TransferEvaluation(Callback):
    """Scores the trained network every epoch on clean test images and on the attacker's sets.

    On setup it gets (trains once, then loads from the cache) the attacker's own network and his
    adversarial examples of the test set. Each validation epoch logs ``val/acc/<attack>`` (exact
    counts over the whole test set, across processes); at fit end it logs
    ``window/max/<set>`` and ``window/median/<set>`` and writes ``metrics.json`` in the run folder.

    Args:
        attacks: the attacker's attacks.
        attack_params: hyperparameters per attack name (the CLI links ``data.attack_params``).
        arch: the attacker's architecture (the CLI links ``model.arch``).
        attacker_seed: seed of the attacker's network.
        attacker_augment: whether the attacker trains with augmentation (Table 5's A/A').
        attacker_epochs: training epochs of the attacker's network.
        attacker_lr: Adam's learning rate for it (the CLI links ``model.lr``).
        window_start: first epoch of the statistics window (1-based).
        window_end: last epoch of the window (None: the last epoch).
        cache_dir: cache folder (the CLI links ``data.cache_dir``).
        attack_batch_size: images per attack batch (None: 1000 on a GPU, 100 on the CPU, where
            smaller batches run faster).
        eval_batch_size: images per evaluation batch.
        example_images: test images shown per set in the example grid (0: none).
    """

    def __init__(
        self,
        attacks: list[AttackName] = ["fgsm", "jsma", "cw"],
        attack_params: dict[str, dict] = {},
        arch: str = "lenet5",
        attacker_seed: int = 2,
        attacker_augment: bool = True,
        attacker_epochs: int = 50,
        attacker_lr: float = 1e-4,
        window_start: int = 20,
        window_end: int | None = None,
        cache_dir: str | None = None,
        attack_batch_size: int | None = None,
        eval_batch_size: int = 1000,
        example_images: int = 8,
    ) -> None:
        if len(set(attacks)) != len(attacks):
            raise ConfigError(f"transfer.attacks={attacks} names an attack twice")
        self.attacks = {name: build_attack(name, **attack_params.get(name, {})) for name in attacks}
        self.spec = SurrogateSpec(arch, attacker_augment, attacker_seed, attacker_epochs, "attacker", attacker_lr)
        self.window_start, self.window_end = window_start, window_end
        self.cache_dir, self.attack_batch_size, self.eval_batch_size = cache_dir, attack_batch_size, eval_batch_size
        self.example_images = example_images
        self.history: dict[int, dict[str, float]] = {}
        self.timings: dict[str, float] = {}
        self.test_sets: dict[str, torch.Tensor] = {}

    @property
    def state_key(self) -> str:
        return "TransferEvaluation"

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit" or self.test_sets:
            return
        self.end = check_window(self.window_start, self.window_end, trainer.max_epochs)
        data = trainer.datamodule
        if data is None or not hasattr(data, "test_x"):
            raise ConfigError("TransferEvaluation needs advlit's MNISTDataModule")
        surrogate.check_distinct(data.source_spec, self.spec)
        self.spec = spec = dataclasses.replace(self.spec, batch_size=data.global_batch_size)
        progress = data.hparams.progress
        start = time.perf_counter()
        net, key = surrogate.load_or_train(spec, data.train_x, data.train_y, data.augmenter, data.train_digest,
                                           self.cache_dir, progress)  # fmt: skip
        self.timings["attacker_surrogate_s"] = time.perf_counter() - start
        test_digest = tensor_digest(data.test_x, data.test_y)
        self.test_y = data.test_y
        self.test_sets = {"clean": data.test_x}
        for name, attack in self.attacks.items():
            start = time.perf_counter()
            self.test_sets[name] = adversarial_sets.load_or_make(
                net, key, name, attack, "test", data.test_x, data.test_y, test_digest,
                self.cache_dir, self.attack_batch_size, progress,
            )  # fmt: skip
            self.timings[f"attacker_{name}_test_set_s"] = time.perf_counter() - start
        self.attacker_key = key

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.fit_start = time.perf_counter()

    @torch.no_grad()
    def accuracy(self, trainer: Trainer, pl_module: LightningModule, x: torch.Tensor) -> float:
        """Exact accuracy on the whole set: this rank's disjoint shard, counts summed over ranks."""
        rank, world = trainer.global_rank, trainer.world_size
        xs, ys = x[rank::world], self.test_y[rank::world]
        correct = sum(
            (pl_module(xs[i : i + self.eval_batch_size]).argmax(1) == ys[i : i + self.eval_batch_size]).sum()
            for i in range(0, len(xs), self.eval_batch_size)
        )
        counts = torch.stack([torch.as_tensor(correct, device=pl_module.device), torch.tensor(len(xs), device=pl_module.device)])
        counts = trainer.strategy.reduce(counts.double(), reduce_op="sum")
        return (counts[0] / counts[1]).item()

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not self.test_sets:
            return
        accs = {name: self.accuracy(trainer, pl_module, x) for name, x in self.test_sets.items()}
        for name, acc in accs.items():
            if name != "clean":  # the module logs val/acc/clean itself
                pl_module.log(f"val/acc/{name}", acc, sync_dist=False)
        self.history[trainer.current_epoch + 1] = accs
        if len(self.history) == 1:  # once per run, resumed runs included
            self.log_examples(trainer)

    def log_examples(self, trainer: Trainer) -> None:
        """A grid like the paper's Figure 1: a row per test set (clean, then each attack)."""
        n = min(self.example_images, len(self.test_y))
        if n == 0 or not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                images = torch.cat([x[:n] for x in self.test_sets.values()]).float().cpu()
                grid = make_grid(images, nrow=n, padding=2, pad_value=0.5)
                logger.experiment.add_image("examples/" + "_".join(self.test_sets), grid, trainer.current_epoch)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.history:
            return
        stats = window_stats(self.history, self.window_start, self.end)
        if hasattr(self, "fit_start"):
            self.timings["training_s"] = time.perf_counter() - self.fit_start
        metrics = {f"window/{kind}/{name}": v for kind, values in stats.items() for name, v in values.items()}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
        folder = Path(trainer.log_dir or trainer.default_root_dir)  # a broadcast: every rank asks
        if trainer.is_global_zero:
            data = trainer.datamodule
            record = {
                "window": [self.window_start, self.end],
                "epochs_run": max(self.history),
                "max": stats["max"],
                "median": stats["median"],
                "per_epoch": {str(e): accs for e, accs in sorted(self.history.items())},
                "defender": {"train_attacks": list(data.attacks), "source": dataclasses.asdict(data.source_spec),
                             "augment": data.hparams.augment, "seed": data.hparams.seed},
                "attacker": {"spec": dataclasses.asdict(self.spec), "key": self.attacker_key,
                             "attacks": {name: a.params() for name, a in self.attacks.items()}},
                "timings_s": {**getattr(data, "timings", {}), **self.timings},
                "test_images": len(self.test_y),
                "seed_everything": os.environ.get("PL_GLOBAL_SEED"),
                "device": str(pl_module.device),
                "world_size": trainer.world_size,
            }  # fmt: skip
            atomic_write(json.dumps(record, indent=2, default=str).encode(), folder / "metrics.json")

    def state_dict(self) -> dict:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = {int(e): accs for e, accs in state_dict["history"].items()}
