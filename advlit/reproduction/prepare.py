"""Build a run's shared stages (networks, adversarial sets) into the cache without training it."""

import dataclasses
import warnings

from advlit.reproduction.table_plan import isolated, lightning_quiet
from advlit.study.cache import tensor_digest


def build_stages(fit_flags: list[str]) -> None:
    """Train (or load) every surrogate of the run that ``advlit fit <fit_flags>`` would start and make
    (or load) its adversarial sets, on the run's device: what its first minutes (or hours) would do,
    so that the runs of a table, started after, all load them from the cache."""
    from advlit.models import Classifier
    from advlit.study.datamodule import MNISTDataModule
    from advlit.study.experiment import TRAINER_DEFAULTS, AdvlitCLI
    from advlit.study.transfer import TransferEvaluation

    with isolated(), lightning_quiet(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")  # in-process, on purpose
        cli = AdvlitCLI(Classifier, MNISTDataModule, trainer_defaults=TRAINER_DEFAULTS, seed_everything_default=0,
                        save_config_callback=None, args=fit_flags, run=False)  # fmt: skip
    trainer, data = cli.trainer, cli.datamodule
    data.trainer = trainer  # the run's device, as in the run
    transfer = next(cb for cb in trainer.callbacks if isinstance(cb, TransferEvaluation))
    data.setup("fit")  # the defender's source network and its training sets
    digest = tensor_digest(data.test_x, data.test_y)
    for name, members in transfer.specs.items():
        if transfer.attacks:
            members = [dataclasses.replace(spec, batch_size=data.global_batch_size) for spec in members]
            transfer.make_attacker_sets(data, name, members, digest)
