"""One experiment's command line (``advlit fit|validate|test``): LightningCLI over the Classifier, the
training mix and the transfer evaluation, with advlit's checks before any work."""

import logging
import tempfile
import zipfile
from pathlib import Path

import torch
from jsonargparse import lazy_instance
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.callbacks.progress import ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from advlit.data.tensor_data import check_divisible
from advlit.runtime.checkpoints import epochs_behind
from advlit.runtime.config_diff import MISSING, config_changes
from advlit.runtime.devices import exact_fp32
from advlit.runtime.errors import ConfigError
from advlit.runtime.progress import EpochOfTotal, progress_bar
from advlit.runtime.threads import cap_threads
from advlit.study import plan
from advlit.study.transfer import TransferEvaluation, check_window

log = logging.getLogger("advlit.cli")  # the name the console shows

TRAINER_DEFAULTS = {
    "max_epochs": 50,
    "log_every_n_steps": 10,  # short runs (a few dozen batches per epoch) still log train/loss
    "logger": lazy_instance(TensorBoardLogger, save_dir="tb_logs", name="advlit", default_hp_metric=False),
    "callbacks": [LearningRateMonitor(logging_interval="epoch"), EpochOfTotal()],
}


class SaveConfig(SaveConfigCallback):
    """Lightning's config.yaml writer; a resumed run (``--ckpt_path``) rewrites its own config."""

    def setup(self, trainer: Trainer, pl_module, stage: str) -> None:
        self.overwrite = self.overwrite or (stage == "fit" and resumes_in(self.config, trainer.log_dir))
        super().setup(trainer, pl_module, stage)


def resumes_in(config, log_dir: str | None) -> bool:
    """Whether the run continues a checkpoint of the run logged in ``log_dir`` (``--ckpt_path`` inside it)."""
    ckpt = config.get("ckpt_path")
    return bool(ckpt and log_dir) and Path(log_dir).resolve() in Path(ckpt).resolve().parents


# Not what a run computes: a resumed run may run longer or on more threads, and its log folder (the
# logger's paths, relative or not) is the one its checkpoint lies in, checked by resumes_in.
NOT_SETTINGS = {"ckpt_path", "threads", "trainer.max_epochs", "trainer.logger"}


def changed_settings(old: dict, new: dict, defaults: dict | None = None) -> list[str]:
    """Dotted keys whose values differ between two configs, leaving out :data:`NOT_SETTINGS`. A key
    the old config lacks (a setting added to advlit since that run started) counts only where the new
    value moves it from its default in ``defaults`` (a config of the same shape; None: always counts)."""
    default = (lambda: MISSING) if defaults is None else (lambda: defaults)
    return [key for key, _, _ in config_changes(old, new, NOT_SETTINGS.__contains__, default)]


class AdvlitCLI(LightningCLI):
    """LightningCLI over :class:`Classifier` and :class:`MNISTDataModule`, with the transfer evaluation.

    ``transfer.*`` configures the attacker and the epoch window; the architecture, learning rate,
    attack settings and cache folder are shared with the defender through argument links.
    """

    def init_parser(self, **kwargs) -> LightningArgumentParser:
        """Lightning's parser without argparse's prefix matching: ``--transfer.attacker_seed`` is an
        unknown setting, not ``--transfer.attacker_seed_offset`` taken silently."""
        return super().init_parser(**{**kwargs, "allow_abbrev": False})

    def _parse_ckpt_path(self) -> None:
        """Lightning reads the model's hyperparameters from ``--ckpt_path`` as it parses; a missing or
        unreadable file is refused in one line first."""
        if self.config.get("subcommand"):
            check_checkpoint(self.config[self.config.subcommand].get("ckpt_path"))
        super()._parse_ckpt_path()

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--threads",
            type=int | None,
            default=None,
            help="CPU threads of this process (default: torch's, one per core; DDP divides the cores itself). "
            "Give 1 to a run that shares the machine with another (advlit/runtime/threads.py).",
        )
        parser.add_lightning_class_args(TransferEvaluation, "transfer")
        parser.link_arguments("model.arch", "data.source_arch")
        parser.link_arguments("model.arch", "transfer.arch")
        parser.link_arguments("model.lr", "data.source_lr")
        parser.link_arguments("model.lr", "transfer.attacker_lr")
        parser.link_arguments("data.attack_params", "transfer.attack_params")
        parser.link_arguments("data.cache_dir", "transfer.cache_dir")

    def instantiate_trainer(self, **kwargs) -> Trainer:
        """The trainer, with the bar redrawn every few batches (:func:`progress_bar`) unless the config
        turns the bar off or brings its own."""
        config = self._get(self.config_init, "trainer", default={})
        callbacks = config.get("callbacks") or []
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        if config.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
            kwargs["callbacks"] = [*callbacks, progress_bar()]
        try:
            return super().instantiate_trainer(**kwargs)
        except (MisconfigurationException, ValueError, TypeError, ImportError) as err:  # Lightning checks trainer.*
            raise ConfigError(f"trainer settings refused by Lightning: {first_line(err)}") from None

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        check_checkpoint(config.get("ckpt_path"))
        check_precision((config.get("trainer") or {}).get("precision"))
        exact_fp32()
        cap_threads(config.get("threads"))

    def check_log_dir(self, log_dir: str | None) -> None:
        """A log folder that holds a run (config.yaml) takes only that run's resumption: a checkpoint
        inside it and the same settings; anything else would mix two runs in one folder."""
        import yaml

        if not log_dir or not (config_path := Path(log_dir) / "config.yaml").is_file():
            return
        config = self.config[self.subcommand]
        if not resumes_in(config, log_dir):
            raise ConfigError(
                f"{log_dir} holds a run already (config.yaml); resume it with --ckpt_path pointing at one of its "
                "checkpoints, or log elsewhere (--trainer.logger.init_args.version)"
            )
        parser = self._parser(self.subcommand)
        new = yaml.safe_load(parser.dump(config, skip_none=False))
        defaults = yaml.safe_load(parser.dump(parser.get_defaults(), skip_none=False))
        changed = changed_settings(yaml.safe_load(config_path.read_text()) or {}, new, defaults=defaults)
        if changed:
            named = ", ".join(changed[:4]) + (", ..." if len(changed) > 4 else "")
            raise ConfigError(
                f"the run in {log_dir} had other settings ({named}); "
                "resume it with its own, or start over (advlit reproduce --restart, or another log folder)"
            )

    def before_fit(self) -> None:
        """Reject a log folder that holds another run or cannot be written, a bad window, or an attacker
        that rebuilds the defender's source or the defended network, before any training."""
        self.check_log_dir(self.trainer.log_dir)
        check_writable(self.trainer.log_dir)
        check_divisible(self.datamodule.hparams.batch_size, self.trainer.world_size)
        transfer = next(cb for cb in self.trainer.callbacks if isinstance(cb, TransferEvaluation))
        check_window(transfer.window_start, transfer.window_end, self.trainer.max_epochs)
        transfer.check_attackers(self.datamodule, self.model)
        if self.trainer.is_global_zero:
            trainer = self.trainer
            hp = self.datamodule.hparams
            speeds = plan.measure(self.model.hparams.arch, trainer.strategy.root_device, hp.batch_size,
                                  attack_batch=hp.attack_batch_size)  # fmt: skip
            stages = plan.stages(
                self.datamodule, transfer, trainer.max_epochs, trainer.world_size, speeds, trainer.strategy.root_device
            )
            ckpt = self.config[self.subcommand].get("ckpt_path")
            done = min(epochs_behind(None if lightning_keyword(ckpt) else ckpt), trainer.max_epochs)
            stages[-1] = plan.remaining(stages[-1], done, trainer.max_epochs)  # the defended network: its epochs left
            for line in plan.describe(stages):
                log.info(line)


CKPT_KEYWORDS = ("last", "best", "hpc", "registry")  # values of --ckpt_path that Lightning resolves itself


def first_line(err: BaseException) -> str:
    """An exception's message, first line only."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def lightning_keyword(ckpt_path: str | None) -> bool:
    """Whether ``--ckpt_path`` is a keyword Lightning resolves itself (``last``, ``registry:...``), not a file."""
    return bool(ckpt_path) and (str(ckpt_path) in CKPT_KEYWORDS or str(ckpt_path).startswith("registry:"))


def check_checkpoint(ckpt_path: str | None) -> None:
    """A ConfigError, before any work, when ``--ckpt_path`` names no readable checkpoint file."""
    if not ckpt_path or lightning_keyword(ckpt_path):
        return
    path = Path(ckpt_path)
    if not path.is_file():
        raise ConfigError(f"--ckpt_path {path}: no such file")
    try:
        readable = zipfile.is_zipfile(path)  # what torch.save writes
    except OSError as err:
        raise ConfigError(f"--ckpt_path {path} cannot be read ({err.strerror or err})") from None
    if readable:
        try:
            torch.load(path, weights_only=True, map_location="cpu", mmap=True)
        except Exception as err:  # a damaged archive
            raise ConfigError(f"--ckpt_path {path} cannot be loaded ({first_line(err)[:200]})") from None
    else:
        raise ConfigError(f"--ckpt_path {path} is not a checkpoint (not a file torch.save wrote, or truncated)")


FP32 = (None, 32, "32", "32-true")


def check_precision(precision) -> None:
    """A ConfigError for any precision but fp32: attacks, scores and cached sets are fp32, and a
    half-precision defender would be scored in another precision than it validates in."""
    if precision not in FP32:
        raise ConfigError(
            f"trainer.precision={precision}: advlit trains, attacks and scores in fp32 only (32-true); "
            "other precisions are refused so that every score is made in one precision"
        )


def check_writable(folder: str | None) -> None:
    """A ConfigError, before any work, when the run's log folder cannot be created or written. Nothing
    is created: the nearest existing folder on its path must take a file (under DDP every process
    runs this before the ranks agree on the folder's version)."""
    if not folder:
        return
    path = Path(folder).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is not a folder")
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise ConfigError(
            f"log folder {folder} cannot be written ({err.strerror or err}); "
            "choose another with --trainer.logger.init_args.save_dir"
        ) from None


def check_config_files(argv: list[str]) -> None:
    """A ConfigError naming a ``--config`` file that is missing, empty or not a YAML mapping
    (the parser's own message names no file)."""
    import yaml

    for i, arg in enumerate(argv):
        if arg in ("--config", "-c") and i + 1 < len(argv):
            path = Path(argv[i + 1])
        elif arg.startswith("--config="):
            path = Path(arg.split("=", 1)[1])
        else:
            continue
        if not path.is_file():
            raise ConfigError(f"config file {path} not found")
        try:
            content = yaml.safe_load(path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise ConfigError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
        if not isinstance(content, dict):
            raise ConfigError(f"config file {path} is {'empty' if content is None else 'not a mapping of settings'}")
