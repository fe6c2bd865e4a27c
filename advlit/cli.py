"""The ``advlit`` command: LightningCLI for ``fit``/``validate``/``test``, plus ``reproduce`` and ``report``."""

import logging
import sys
from pathlib import Path

from jsonargparse import lazy_instance
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.callbacks.progress import ProgressBar
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import TensorBoardLogger

from advlit.data import MNISTDataModule
from advlit.errors import ConfigError, MissingDataError
from advlit.models import Classifier
from advlit.progress import EpochOfTotal, progress_bar
from advlit.provenance import process_provenance
from advlit.quiet import quiet_third_party
from advlit.study import plan
from advlit.study.transfer import TransferEvaluation, check_window
from advlit.threads import cap_threads

log = logging.getLogger("advlit.cli")

TRAINER_DEFAULTS = {
    "max_epochs": 50,
    "log_every_n_steps": 10,  # short runs (a few dozen batches per epoch) still log train/loss
    "logger": lazy_instance(TensorBoardLogger, save_dir="tb_logs", name="advlit", default_hp_metric=False),
    "callbacks": [LearningRateMonitor(logging_interval="epoch"), EpochOfTotal()],
}


OVERVIEW = """advlit: black-box adversarial training on MNIST (Park & So, 2020).

commands:
  fit / validate / test   one experiment (LightningCLI; advlit fit --help lists every setting)
  reproduce               every run of a paper table: advlit reproduce --table 2 [--profile quick]
  report                  our tables beside the paper's, controls, findings: advlit report --profile quick
  networks                keep surrogate networks in git, seed a cache: advlit networks seed results/paper/networks

Lightning's own help follows.
"""


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


def changed_settings(old, new, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two configs, leaving out :data:`NOT_SETTINGS`."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [] if old == new else [prefix.rstrip(".")]
    changed = []
    for key in sorted(set(old) | set(new)):
        if f"{prefix}{key}" not in NOT_SETTINGS:
            changed += changed_settings(old.get(key), new.get(key), f"{prefix}{key}.")
    return changed


class AdvlitCLI(LightningCLI):
    """LightningCLI over :class:`Classifier` and :class:`MNISTDataModule`, with the transfer evaluation.

    ``transfer.*`` configures the attacker and the epoch window; the architecture, learning rate,
    attack settings and cache folder are shared with the defender through argument links.
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--threads",
            type=int | None,
            default=None,
            help="CPU threads of this process (default: torch's, one per core; DDP divides the cores itself). "
            "Give 1 to a run that shares the machine with another (advlit/threads.py).",
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
        return super().instantiate_trainer(**kwargs)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
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
        new = yaml.safe_load(self._parser(self.subcommand).dump(config, skip_none=False))
        changed = changed_settings(yaml.safe_load(config_path.read_text()) or {}, new)
        if changed:
            named = ", ".join(changed[:4]) + (", ..." if len(changed) > 4 else "")
            raise ConfigError(
                f"the run in {log_dir} had other settings ({named}); "
                "resume it with its own, or start over (advlit reproduce --restart, or another log folder)"
            )

    def before_fit(self) -> None:
        """Reject a log folder that holds another run, a bad window, or an attacker that rebuilds the
        defender's source or the defended network, before any training."""
        self.check_log_dir(self.trainer.log_dir)
        transfer = next(cb for cb in self.trainer.callbacks if isinstance(cb, TransferEvaluation))
        check_window(transfer.window_start, transfer.window_end, self.trainer.max_epochs)
        transfer.check_attackers(self.datamodule, self.model)
        if self.trainer.is_global_zero:
            trainer = self.trainer
            hp = self.datamodule.hparams
            speeds = plan.measure(self.model.hparams.arch, trainer.strategy.root_device, hp.batch_size,
                                  attack_batch=hp.attack_batch_size)  # fmt: skip
            stages = plan.stages(self.datamodule, transfer, trainer.max_epochs, trainer.world_size, speeds)
            for line in plan.describe(stages):
                log.info(line)


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


def main(args: ArgsType = None) -> None:
    """Run the command line; settings and data problems exit with one line, not a traceback."""
    argv = list(sys.argv[1:] if args is None else args)
    process_provenance()  # the code this process imported, before the checkout can move on
    quiet_third_party()
    if argv in ([], ["-h"], ["--help"]):
        print(OVERVIEW)
    if argv and argv[0] in ("reproduce", "report"):
        import importlib

        return importlib.import_module(f"advlit.{argv[0]}").main(argv[1:])
    if argv and argv[0] == "networks":
        from advlit.study import stored_networks

        return stored_networks.main(argv[1:])
    root = logging.getLogger("advlit")
    for old in [h for h in root.handlers if getattr(h, "advlit_console", False)]:
        root.removeHandler(old)  # one console handler, also when main() runs again in a process
    handler = logging.StreamHandler()
    handler.advlit_console = True
    handler.setFormatter(logging.Formatter("advlit: %(message)s"))
    root.addHandler(handler)
    logging.getLogger("advlit").setLevel(logging.INFO)
    try:
        check_config_files(argv)
        AdvlitCLI(
            Classifier,
            MNISTDataModule,
            trainer_defaults=TRAINER_DEFAULTS,
            seed_everything_default=0,
            save_config_callback=SaveConfig,
            args=args,
        )
    except (ConfigError, MissingDataError) as err:
        print(f"advlit: error: {err}", file=sys.stderr)
        sys.exit(2)
