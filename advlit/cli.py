"""The ``advlit`` command: LightningCLI for ``fit``/``validate``/``test``."""

import sys

from jsonargparse import lazy_instance
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.cli import ArgsType, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger

from advlit.data import MNISTDataModule
from advlit.errors import ConfigError, MissingDataError
from advlit.models import Classifier

TRAINER_DEFAULTS = {
    "max_epochs": 50,
    "logger": lazy_instance(TensorBoardLogger, save_dir="tb_logs", name="advlit"),
    "callbacks": [LearningRateMonitor(logging_interval="epoch")],
}


class AdvlitCLI(LightningCLI):
    """LightningCLI over :class:`Classifier` and :class:`MNISTDataModule`."""


def main(args: ArgsType = None) -> None:
    """Run the command line; settings and data problems exit with one line, not a traceback."""
    try:
        AdvlitCLI(
            Classifier,
            MNISTDataModule,
            trainer_defaults=TRAINER_DEFAULTS,
            seed_everything_default=0,
            args=args,
        )
    except (ConfigError, MissingDataError) as err:
        print(f"advlit: error: {err}", file=sys.stderr)
        sys.exit(2)
