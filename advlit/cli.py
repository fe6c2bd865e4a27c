"""The ``advlit`` command: ``fit``/``validate``/``test`` (one experiment, LightningCLI), ``reproduce``,
``report`` and ``networks``."""

import logging
import sys

from lightning.pytorch.cli import ArgsType

from advlit.models import Classifier
from advlit.runtime.driver import end_with_driver
from advlit.runtime.errors import ConfigError, MissingDataError
from advlit.runtime.provenance import process_provenance
from advlit.runtime.quiet import quiet_third_party
from advlit.study.datamodule import MNISTDataModule
from advlit.study.experiment import TRAINER_DEFAULTS, AdvlitCLI, SaveConfig, check_config_files

OVERVIEW = """advlit: black-box adversarial training on MNIST (Park & So, 2020).

commands:
  fit / validate / test   one experiment (LightningCLI; advlit fit --help lists every setting)
  reproduce               every run of a paper table: advlit reproduce --table 2 [--profile quick]
  report                  our tables beside the paper's, controls, findings: advlit report --profile quick
  networks                keep surrogate networks in git, seed a cache: advlit networks seed results/paper/networks

Lightning's own help follows.
"""


def main(args: ArgsType = None) -> None:
    """Run the command line; settings and data problems exit with one line, not a traceback."""
    argv = list(sys.argv[1:] if args is None else args)
    end_with_driver()  # a run started by advlit reproduce ends with it
    process_provenance()  # the code this process imported, before the checkout can move on
    quiet_third_party()
    if argv in ([], ["-h"], ["--help"]):
        print(OVERVIEW)
    if argv and argv[0] in ("reproduce", "report"):
        import importlib

        return importlib.import_module(f"advlit.reproduction.{argv[0]}").main(argv[1:])
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
