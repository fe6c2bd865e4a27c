"""The transfer-evaluation callback: the defender scored on each attacker's black-box test sets."""

import dataclasses
import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.tensorboard.summary import hparams as hparams_summary
from torchvision.utils import make_grid

from advlit.attacks import AttackName, build_attacks
from advlit.runtime.devices import default_eval_batch, float_settings
from advlit.runtime.errors import ConfigError
from advlit.runtime.files import atomic_write
from advlit.runtime.provenance import process_provenance
from advlit.study import adversarial_sets, robustness, surrogate
from advlit.study.cache import content_key, tensor_digest
from advlit.study.controls import CONTROLS_VERSION
from advlit.study.quality import set_quality
from advlit.study.rank_check import check_ranks_agree
from advlit.study.robustness import EIGHT_BIT_SUFFIX, WHITEBOX
from advlit.study.run_summary import NOISE_SUFFIX, custom_scalars_layout, summary_lines
from advlit.study.surrogate import SurrogateSpec, check_distinct, defended_spec
from advlit.study.window import window_stats

log = logging.getLogger(__name__)
NUM_CLASSES = 10


def to_8bit(x: torch.Tensor) -> torch.Tensor:
    """Pixels rounded to multiples of 1/255, as an 8-bit PNG stores them."""
    return torch.round(x * 255) / 255


@dataclass(frozen=True)
class Attacker:
    """One attacker: a name for his sets (``<name>/<attack>``), his augmentation and his seed.

    Table 5's attackers are ``A`` (trained with augmentation) and ``Ap`` (A', without). With
    ``members`` the attacker is an ensemble (Liu et al. 2017): one network per member (each member's
    ``arch``, ``augment`` and ``seed``, the attacker's where a member leaves them out), attacked
    through their averaged logits (Dong et al. 2018's ensemble in logits); each member is a cached
    surrogate, guarded against leaks like any.
    """

    name: str = "A"
    augment: bool = True
    seed: int = 2
    members: list[dict] | None = None  # an ensemble: [{seed: 2}, {seed: 3, arch: resnet18}, {augment: false}]


MEMBER_KEYS = {"arch", "augment", "seed"}


def member_specs(attacker: Attacker, arch: str, seed_offset: int, epochs: int, lr: float) -> list[SurrogateSpec]:
    """The surrogate spec of each network of ``attacker`` (one, or one per ensemble member)."""
    members = attacker.members if attacker.members is not None else [{}]
    if not members:
        raise ConfigError(f"attacker {attacker.name}: members=[] names no network; leave members out for one")
    specs = []
    for member in members:
        unknown = sorted(set(member) - MEMBER_KEYS)
        if unknown:
            raise ConfigError(f"attacker {attacker.name}: member keys {unknown} unknown; use {sorted(MEMBER_KEYS)}")
        seed = int(member.get("seed", attacker.seed)) + seed_offset
        augment = bool(member.get("augment", attacker.augment))
        specs.append(SurrogateSpec(member.get("arch", arch), augment, seed, epochs, "attacker", lr))
    if len({(s.arch, s.augment, s.seed) for s in specs}) < len(specs):
        raise ConfigError(f"attacker {attacker.name}: two ensemble members are the same network")
    return specs


class Ensemble(nn.Module):
    """Networks attacked together: the mean of their logits (Dong et al. 2018's ensemble in logits)."""

    def __init__(self, nets: list[nn.Module]) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([net(x) for net in self.nets]).mean(0)


def ensemble(nets: list) -> tuple[nn.Module, str, str]:
    """``(network, cache key, weights digest)`` of an attacker's loaded surrogates: the network itself
    for one (its own key and digest), an :class:`Ensemble` keyed by its members' keys for several."""
    if len(nets) == 1:
        return nets[0].net, nets[0].key, nets[0].weights
    key = content_key({"ensemble": [s.key for s in nets]})
    weights = hashlib.sha256("".join(s.weights for s in nets).encode()).hexdigest()
    return Ensemble([s.net for s in nets]).eval(), key, weights


def check_window(start: int, end: int | None, max_epochs: int | None) -> int:
    """The window's last epoch; a ConfigError unless ``1 <= start <= end <= max_epochs``."""
    end = end if end is not None else max_epochs
    if max_epochs is not None and max_epochs < 1:
        raise ConfigError(f"trainer.max_epochs={max_epochs} must be >= 1")
    if end is None or max_epochs is None:
        raise ConfigError("the epoch window needs trainer.max_epochs (or transfer.window_end) to be set")
    if not 1 <= start <= end <= max_epochs:
        raise ConfigError(f"epoch window {start}-{end} must lie within the run's epochs 1-{max_epochs}")
    return end


def _flatten(tree: dict, prefix: str = "") -> dict[str, str | int | float | bool]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and None as text; keys starting with _ dropped."""
    out: dict[str, str | int | float | bool] = {}
    for key, value in tree.items():
        if str(key).startswith("_"):
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value if isinstance(value, (str, int, float, bool)) else str(value)
    return out


class TransferEvaluation(Callback):
    """Scores the trained network every epoch on clean test images and on each attacker's sets.

    On setup it gets (trains once, then loads from the cache) each attacker's own network, his
    adversarial examples of the test set and their matched-noise controls. Each validation epoch
    logs ``val/acc/<attacker>/<attack>`` and ``val/acc/<attacker>/<attack>_noise`` (exact counts
    over the whole test set, across processes); at fit end it logs ``window/max/<set>`` and
    ``window/median/<set>`` and writes ``metrics.json`` (with each set's quality and the defender's
    predicted-class histogram per set at the last epoch) in the run folder.

    Args:
        attacks: the attackers' attacks (empty: no attacker network is trained).
        attack_params: hyperparameters per attack name (the CLI links ``data.attack_params``).
        arch: the attackers' architecture (the CLI links ``model.arch``).
        attackers: one entry per attacker (name, augmentation, seed); None: one attacker ``A`` with
            augmentation and seed 2. Table 5 needs ``A`` and ``Ap``.
        attacker_epochs: training epochs of the attackers' networks.
        attacker_seed_offset: added to every attacker's seed (``advlit reproduce --seeds`` reseeds with it).
        attacker_lr: Adam's learning rate for them (the CLI links ``model.lr``).
        window_start: first epoch of the statistics window (1-based).
        window_end: last epoch of the window (None: the last epoch).
        cache_dir: cache folder (the CLI links ``data.cache_dir``).
        attack_batch_size: images per attack batch (None: 1000 on a GPU, 100 on the CPU).
        eval_batch_size: images per scoring batch, and per white-box attack batch (None: 500 on
            the CPU, 5,000 on a GPU, where small batches leave it waiting on kernel launches).
        example_images: test images shown per set in the example grid (0: none).
        whitebox_attacks: attacks run on the defended network itself at each validation epoch of the
            window (only the window's statistics use them; PGD costs 41 passes per image), with
            the attackers' ``attack_params`` (empty: none).
        whitebox_images: the first this many test images are attacked white-box.
        masking_margin: the gradient-masking flag is raised when an attack's black-box window median
            is more than this below its white-box one on the same images (0.02: two points, above
            the noise of a median over 1,000 images).
        quantize: also score each attack set rounded to 8 bits (multiples of 1/255, as a saved PNG
            holds it) as ``<attacker>/<attack>_8bit``, its white-box success rechecked in set quality.
    """

    def __init__(
        self,
        attacks: list[AttackName] = ["fgsm", "jsma", "cw"],
        attack_params: dict[str, dict] = {},
        arch: str = "lenet5",
        attackers: list[Attacker] | None = None,
        attacker_epochs: int = 50,
        attacker_seed_offset: int = 0,
        attacker_lr: float = 1e-4,
        window_start: int = 20,
        window_end: int | None = None,
        cache_dir: str | None = None,
        attack_batch_size: int | None = None,
        eval_batch_size: int | None = None,
        example_images: int = 8,
        whitebox_attacks: list[AttackName] = ["fgsm", "pgd"],
        whitebox_images: int = 1000,
        masking_margin: float = 0.02,
        quantize: bool = False,
    ) -> None:
        if whitebox_images < 1:
            raise ConfigError(f"transfer.whitebox_images={whitebox_images} must be >= 1")
        if eval_batch_size is not None and eval_batch_size < 1:
            raise ConfigError(f"transfer.eval_batch_size={eval_batch_size} must be >= 1")
        if attack_batch_size is not None and attack_batch_size < 1:
            raise ConfigError(f"transfer.attack_batch_size={attack_batch_size} must be >= 1 or null (automatic)")
        attackers = [Attacker()] if attackers is None else attackers  # None: a default that config files can hold
        attackers = [a if isinstance(a, Attacker) else Attacker(**a) for a in attackers]
        for a in attackers:  # checked here, not in Attacker, so that the CLI reports it in one line
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", a.name) or a.name in ("clean", WHITEBOX):
                raise ConfigError(f"attacker name {a.name!r} must be letters, digits and _ (not 'clean', '{WHITEBOX}')")
        if not attackers or len({a.name for a in attackers}) != len(attackers):
            raise ConfigError(f"transfer.attackers needs at least one attacker and distinct names, got {attackers}")
        self.attacks = build_attacks(attacks, attack_params, "transfer.attacks")
        self.whitebox = build_attacks(whitebox_attacks, attack_params, "transfer.whitebox_attacks")
        if not 0 <= masking_margin <= 1:
            raise ConfigError(f"transfer.masking_margin={masking_margin} must be in [0, 1]")
        self.whitebox_images, self.masking_margin, self.quantize = whitebox_images, masking_margin, quantize
        self.subset_history: dict[int, dict[str, float]] = {}  # black-box accuracy on the white-box images
        self.specs = {a.name: member_specs(a, arch, attacker_seed_offset, attacker_epochs, attacker_lr)
                      for a in attackers}  # fmt: skip
        self.window_start, self.window_end = window_start, window_end
        self.cache_dir, self.attack_batch_size, self.eval_batch_size = cache_dir, attack_batch_size, eval_batch_size
        self.example_images = example_images
        self.history: dict[int, dict[str, float]] = {}
        self.histograms: dict[str, list[int]] = {}
        self.timings: dict[str, float] = {}
        self.training_before_s = 0.0  # training time of the earlier parts of a resumed run
        self.earlier_timings: dict[str, float] = {}  # stage times of the run's first part (a resumed run)
        self.made: dict[str, float | None] = {}  # seconds each cached stage took to make, wherever it was made
        self.earlier_provenance: list[dict | None] = []  # the code of the earlier parts of a resumed run
        self.data_timings: dict[str, float] = {}
        self.resumed_at: list[int] = []  # the epochs after which the run was resumed
        self.quality: dict[str, dict] = {}
        self.keys: dict[str, str] = {}
        self.test_sets: dict[str, torch.Tensor] = {}
        self.set_digests: dict[str, str] = {}  # each test set's SHA-256, checked when a run resumes

    @property
    def state_key(self) -> str:
        return "TransferEvaluation"

    def check_attackers(self, data, pl_module: LightningModule) -> None:
        """A ConfigError when an attacker would rebuild the defender's source or the defended network."""
        hp = pl_module.hparams
        defended = defended_spec(hp.arch, hp.lr, data.hparams.augment, data.hparams.seed, list(data.attacks),
                                 os.environ.get("PL_GLOBAL_SEED"))  # fmt: skip
        for members in self.specs.values():
            for spec in members:
                for source in getattr(data, "source_specs", [data.source_spec]):
                    check_distinct(source, spec, defended)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit" or self.test_sets:
            return
        self.end = check_window(self.window_start, self.window_end, trainer.max_epochs)
        data = trainer.datamodule
        if data is None or not hasattr(data, "test_x"):
            raise ConfigError("TransferEvaluation needs advlit's MNISTDataModule")
        self.check_attackers(data, pl_module)
        self.test_y = data.test_y
        self.started_from = process_provenance()  # the code this process imported, read as it started
        self.data_timings = getattr(data, "timings", {})
        self.test_sets = {"clean": data.test_x}
        test_digest = tensor_digest(data.test_x, data.test_y)
        for name, members in self.specs.items():
            if self.attacks:
                members = [dataclasses.replace(spec, batch_size=data.global_batch_size) for spec in members]
                self.make_attacker_sets(data, name, members, test_digest)
        self.set_digests = {name: tensor_digest(x) for name, x in self.test_sets.items()}
        check_ranks_agree(trainer, self.set_digests, "test sets")

    def make_attacker_sets(self, data, name: str, members: list[SurrogateSpec], test_digest: str) -> None:
        """Train (or load) one attacker's network (or every member of his ensemble), then make (or
        load) his sets and controls."""
        self.specs[name] = members
        progress = data.hparams.progress
        start = time.perf_counter()
        nets = [surrogate.load_or_train(spec, data.train_x, data.train_y, data.augmenter, data.train_digest,
                                        self.cache_dir, progress) for spec in members]  # fmt: skip
        net, self.keys[name], weights = ensemble(nets)
        made = [s.made_s for s in nets]
        self.made[f"attacker_{name}_surrogate_s"] = None if None in made else sum(made)
        self.timings[f"attacker_{name}_surrogate_s"] = time.perf_counter() - start
        for attack_name, attack in self.attacks.items():
            start = time.perf_counter()
            x_adv, x_noise, self.made[f"attacker_{name}_{attack_name}_test_set_s"] = adversarial_sets.load_or_make(
                net, self.keys[name], attack_name, attack, "test", data.test_x, data.test_y, test_digest,
                self.cache_dir, self.attack_batch_size, progress, weights,
            )  # fmt: skip
            self.timings[f"attacker_{name}_{attack_name}_test_set_s"] = time.perf_counter() - start
            sets = [(f"{name}/{attack_name}", x_adv), (f"{name}/{attack_name}{NOISE_SUFFIX}", x_noise)]
            if self.quantize:
                sets.append((f"{name}/{attack_name}{EIGHT_BIT_SUFFIX}", to_8bit(x_adv)))
            for set_name, x in sets:
                self.test_sets[set_name] = x
                self.quality[set_name] = set_quality(net, data.test_x, data.test_y, x)

    @property
    def whitebox_count(self) -> int:
        """How many of the first test images the white-box attacks use (fewer when the set is smaller)."""
        return min(self.whitebox_images, len(self.test_y))

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.fit_start = time.perf_counter()
        if trainer.is_global_zero and self.attacks:
            layout = custom_scalars_layout(list(self.specs), list(self.attacks))
            for logger in trainer.loggers:
                if isinstance(logger, TensorBoardLogger):
                    logger.experiment.add_custom_scalars(layout)

    def score_batch_size(self, device: torch.device) -> int:
        """``eval_batch_size``, or the device's default (:func:`advlit.runtime.devices.default_eval_batch`)."""
        return self.eval_batch_size or default_eval_batch(device)

    @torch.no_grad()
    def counts(
        self, trainer: Trainer, pl_module: LightningModule, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's ``(12,)`` counts on its shard ``x[rank::world]``: correct, images, then images
        predicted as each class; and its per-image correctness. Nothing is read back to the host:
        the ranks' counts are summed later, with every other score of the epoch (exact, no padding)."""
        rank, world = trainer.global_rank, trainer.world_size
        xs, ys = x[rank::world], self.test_y[rank::world]
        out = torch.zeros(2 + NUM_CLASSES, dtype=torch.float64, device=pl_module.device)
        correct = torch.zeros(len(xs), dtype=torch.bool, device=pl_module.device)
        classes = torch.arange(NUM_CLASSES, device=pl_module.device)
        batch = self.score_batch_size(pl_module.device)
        for i in range(0, len(xs), batch):
            pred = pl_module(xs[i : i + batch]).argmax(1)
            correct[i : i + batch] = pred == ys[i : i + batch]
            out[2:] += (pred[:, None] == classes).sum(0)  # bincount would read its size back from a GPU
        out[0], out[1] = correct.sum(), len(xs)
        return out, correct

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not self.test_sets:
            return
        scored = {name: self.counts(trainer, pl_module, x) for name, x in self.test_sets.items()}
        correct = {name: m for name, (_, m) in scored.items()}
        n = self.whitebox_count
        worst, subset = robustness.worst_and_subset_tallies(
            trainer, correct, self.specs, self.attacks, self.whitebox, n
        )
        groups = {"acc": {name: c[:2] for name, (c, _) in scored.items()} | worst, "subset": subset,
                  "predicted": {name: c[2:] for name, (c, _) in scored.items()}}  # fmt: skip
        epoch = trainer.current_epoch + 1
        if self.window_start <= epoch <= self.end:  # the same on every rank: all join the collectives
            start = time.perf_counter()
            groups["acc"] |= robustness.whitebox_tallies(
                trainer,
                pl_module,
                self.whitebox,
                self.test_sets["clean"][:n],
                self.test_y[:n],
                self.score_batch_size(pl_module.device),
            )
            self.timings["whitebox_s"] = self.timings.get("whitebox_s", 0.0) + time.perf_counter() - start
        summed = robustness.sum_over_ranks(trainer, groups)  # the epoch's one all_reduce and one read
        accs = robustness.accuracies(summed["acc"])
        for name, acc in accs.items():
            if name != "clean":  # the module logs val/acc/clean itself
                pl_module.log(f"val/acc/{name}", acc, sync_dist=False)
        self.history[epoch] = accs
        self.subset_history[epoch] = robustness.accuracies(summed["subset"])
        self.histograms = {name: [int(v) for v in counts] for name, counts in summed["predicted"].items()}
        if len(self.history) == 1:  # once per run, resumed runs included
            self.log_examples(trainer)

    def log_examples(self, trainer: Trainer) -> None:
        """A grid like the paper's Figure 1: a row per test set (clean, then each attack and control)."""
        n = min(self.example_images, len(self.test_y))
        if n == 0 or not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                images = torch.cat([x[:n] for x in self.test_sets.values()]).float().cpu()
                grid = make_grid(images, nrow=n, padding=2, pad_value=0.5)
                rows = " | ".join(self.test_sets)
                logger.experiment.add_image("examples (rows: " + rows + ")", grid, trainer.current_epoch)

    def noise_gaps(self, medians: dict[str, float]) -> dict[str, float]:
        """Median accuracy under each attack minus under its matched noise (negative: transfer)."""
        return {
            name: medians[name] - medians[name + NOISE_SUFFIX]
            for name in medians
            if "/" in name and not name.endswith(NOISE_SUFFIX) and name + NOISE_SUFFIX in medians
        }

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.history:
            return
        stats = window_stats(self.history, self.window_start, self.end)
        self.timings["training_s"] = self.training_so_far()
        metrics = {f"window/{kind}/{name}": v for kind, values in stats.items() for name, v in values.items()}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
        folder = Path(trainer.log_dir or trainer.default_root_dir)  # a broadcast: every rank asks
        if trainer.is_global_zero:
            record = self.write_metrics(trainer, pl_module, stats, folder / "metrics.json")
            self.log_hparams(trainer, folder / "config.yaml", stats["median"])
            for line in summary_lines(record):
                log.info(line)
            log.info("metrics: %s", folder / "metrics.json")
            log.info("TensorBoard: tensorboard --logdir %s (Custom Scalars: each attack beside its noise)", folder)

    def log_hparams(self, trainer: Trainer, config: Path, medians: dict[str, float]) -> None:
        """TensorBoard's HParams tab: the whole resolved config, with the window medians as metrics
        (the ``window/median/*`` scalars already logged: no second copy in the Scalars tab)."""
        if not config.exists():
            return
        params = _flatten(yaml.safe_load(config.read_text()) or {})
        exp, start, end = hparams_summary(params, {f"window/median/{k}": v for k, v in medians.items()})
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                writer = logger.experiment._get_file_writer()
                for summary in (exp, start, end):
                    writer.add_summary(summary)
                writer.flush()

    def write_metrics(self, trainer: Trainer, pl_module: LightningModule, stats: dict, path: Path) -> dict:
        """Write ``metrics.json`` and return its record."""
        data = trainer.datamodule
        gaps = self.noise_gaps(stats["median"])
        for name, gap in gaps.items():
            if gap > -0.10:
                log.warning("%s is within 10 points of its matched noise (%+.1f): fragility, not transfer", name,
                            100 * gap)  # fmt: skip
        masking = {}
        if self.subset_history:
            subset = window_stats(self.subset_history, self.window_start, self.end)["median"]
            masking = robustness.gradient_masking(subset, stats["median"], self.whitebox_count, self.masking_margin)
        record = {
            "window": [self.window_start, self.end],
            "epochs_run": max(self.history),
            "resumed_after_epochs": self.resumed_at,
            "max": stats["max"],
            "median": stats["median"],
            "attack_minus_noise_median": gaps,
            "controls_version": CONTROLS_VERSION,
            "whitebox": {"images": self.whitebox_count, "masking_margin": self.masking_margin,
                         "attacks": {name: a.params() for name, a in self.whitebox.items()}},
            "gradient_masking": masking,
            "per_epoch": {str(e): accs for e, accs in sorted(self.history.items())},
            "predicted_classes_last_epoch": self.histograms,
            "set_quality": {**getattr(data, "set_quality", {}), **self.quality},
            "defender": {"train_attacks": list(data.attacks), "source": dataclasses.asdict(data.source_spec),
                         "extra_source_seeds": [s.seed for s in getattr(data, "source_specs", [data.source_spec])[1:]],
                         "augment": data.hparams.augment, "seed": data.hparams.seed,
                         "augmentation": dataclasses.asdict(data.augmenter),
                         "attacks": {name: a.params() for name, a in data.attacks.items()}},
            "attackers": {name: {"spec": dataclasses.asdict(members[0]), "key": self.keys.get(name),
                                 **({"members": [dataclasses.asdict(m) for m in members]} if len(members) > 1 else {})}
                          for name, members in self.specs.items()},
            "attacks": {name: a.params() for name, a in self.attacks.items()},
            "timings_s": self.stage_timings(),
            "made_s": {**getattr(data, "made", {}), **self.made},
            "test_images": len(self.test_y),
            "seed_everything": os.environ.get("PL_GLOBAL_SEED"),
            "device": str(pl_module.device),
            "world_size": trainer.world_size,
            "torch_threads": torch.get_num_threads(),  # as the run ended (--threads sets it after the start)
            "float_settings": float_settings(pl_module.device, getattr(pl_module, "adam_kind", None)),
            "provenance": getattr(self, "started_from", None) or process_provenance(),
            "provenance_earlier_parts": self.earlier_provenance,
            "config": (path.parent / "config.yaml").read_text() if (path.parent / "config.yaml").exists() else None,
        }  # fmt: skip
        atomic_write(json.dumps(record, indent=2, default=str).encode(), path)
        return record

    def training_so_far(self) -> float:
        """Seconds of training in this run, earlier parts of a resumed run included."""
        return self.training_before_s + (time.perf_counter() - self.fit_start if hasattr(self, "fit_start") else 0.0)

    def stage_timings(self) -> dict[str, float]:
        """Seconds per stage (the datamodule's and this callback's). In a resumed run, a stage keeps the
        time it took when it was made, not the cache load of the later part; training and white-box
        times add up over the parts."""
        return {**self.data_timings, **self.timings, **self.earlier_timings,
                "training_s": self.training_so_far(), "whitebox_s": self.timings.get("whitebox_s", 0.0)}  # fmt: skip

    def state_dict(self) -> dict:
        return {"history": self.history, "histograms": self.histograms, "subset_history": self.subset_history,
                "timings": self.stage_timings(), "resumed_at": self.resumed_at,
                "provenance": getattr(self, "started_from", None),
                "earlier_provenance": self.earlier_provenance, "set_digests": self.set_digests}  # fmt: skip

    def check_same_sets(self, earlier: dict[str, str]) -> None:
        """A resumed run must score its later epochs on the sets its earlier epochs were scored on."""
        now = self.set_digests
        changed = sorted(name for name, digest in earlier.items() if name in now and now[name] != digest)
        if changed:
            raise ConfigError(
                f"the test sets {', '.join(changed)} differ from those this run's first epochs were scored on "
                "(the cache was made again); start the run over (advlit reproduce --restart)"
            )

    def load_state_dict(self, state_dict: dict) -> None:
        self.check_same_sets(state_dict.get("set_digests", {}))  # runs checkpointed before the digests: none
        self.history = {int(e): accs for e, accs in state_dict["history"].items()}
        self.histograms = state_dict.get("histograms", {})
        self.subset_history = {int(e): accs for e, accs in state_dict.get("subset_history", {}).items()}
        earlier = dict(state_dict.get("timings", {}))
        self.training_before_s = earlier.pop("training_s", 0.0)
        self.timings["whitebox_s"] = earlier.pop("whitebox_s", 0.0)
        self.earlier_timings = earlier
        self.resumed_at = [*state_dict.get("resumed_at", []), max(self.history, default=0)]
        self.earlier_provenance = [*state_dict.get("earlier_provenance", []), state_dict.get("provenance")]
