"""``advlit reproduce --plan``: the stages every unfinished run of a table would make, with time
estimates from speeds measured here, and the table's total. A stage that several runs share (a
surrogate network, an adversarial set) is counted once, in the first run that makes it."""

import contextlib
import logging
import os
import random
import warnings
from collections.abc import Iterator

import numpy as np
import torch

from advlit.runtime.progress import duration
from advlit.study import plan
from advlit.study.plan import Stage


@contextlib.contextmanager
def isolated() -> Iterator[None]:
    """Undo what building a run's CLI sets for the process: the global seed (random streams and
    ``PL_GLOBAL_SEED``) and the thread count (``--threads``)."""
    env = {k: os.environ.get(k) for k in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    threads, py_state, np_state = torch.get_num_threads(), random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            for key, value in env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            torch.set_num_threads(threads)
            random.setstate(py_state)
            np.random.set_state(np_state)


@contextlib.contextmanager
def lightning_quiet() -> Iterator[None]:
    """Lightning's info lines (devices, seeds) once per run would bury the plan."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def run_stages(fit_flags: list[str], speeds: dict) -> tuple[list[Stage], int]:
    """The stages of the run that ``advlit fit <fit_flags>`` starts, and its epochs; ``speeds`` caches
    the measured speeds per (architecture, device, batch size)."""
    from advlit.models import Classifier
    from advlit.study.datamodule import MNISTDataModule
    from advlit.study.experiment import TRAINER_DEFAULTS, AdvlitCLI
    from advlit.study.transfer import TransferEvaluation

    with isolated(), lightning_quiet(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")  # in-process, on purpose
        cli = AdvlitCLI(Classifier, MNISTDataModule, trainer_defaults=TRAINER_DEFAULTS, seed_everything_default=0,
                        save_config_callback=None, args=fit_flags, run=False)  # fmt: skip
        trainer, data = cli.trainer, cli.datamodule
        transfer = next(cb for cb in trainer.callbacks if isinstance(cb, TransferEvaluation))
        hp = data.hparams
        key = (cli.model.hparams.arch, str(trainer.strategy.root_device), hp.batch_size, hp.attack_batch_size)
        if key not in speeds:
            speeds[key] = plan.measure(key[0], trainer.strategy.root_device, key[2], attack_batch=key[3])
        stages = plan.stages(
            data, transfer, trainer.max_epochs, trainer.world_size, speeds[key], trainer.strategy.root_device
        )
        return stages, trainer.max_epochs


def table_plan(runs: list[tuple[str, list[str], str | None]]) -> list[str]:
    """Lines of the plan of ``runs``: (label, ``advlit fit`` flags, checkpoint it resumes from or None).
    A run that cannot be built (missing data, a device this machine lacks) is a ConfigError naming it."""
    from advlit.runtime.errors import ConfigError, MissingDataError

    speeds: dict = {}
    seen: set[str] = set()
    lines, total = [], 0.0
    for label, flags, resume_from in runs:
        try:
            stages, epochs = run_stages(flags, speeds)
        except (ConfigError, MissingDataError) as err:
            raise ConfigError(f"cannot plan {label}: {err}") from None
        except Exception as err:  # Lightning's own (a device count this machine lacks, ...): one line
            raise ConfigError(f"cannot plan {label}: {type(err).__name__}: {err}") from None
        done = min(plan.epochs_done(resume_from), epochs)
        todo = []
        for stage in stages:
            if stage.cached or (stage.key and stage.key in seen):
                continue
            if not stage.key:  # the run's own network: what is left of its epochs
                stage = plan.remaining(stage, done, epochs)
            if stage.key:  # a network in two places of one run (A's, in ensemble E) is made once
                seen.add(stage.key)
            todo.append(stage)
        run_total = sum(s.seconds for s in todo)
        total += run_total
        lines.append(f"{label}: about {duration(run_total)}")
        lines += [f"  {duration(s.seconds):>8s}  {s.name}" for s in todo]
    lines.append(f"total to make: about {duration(total)} in one process on this device "
                 "(estimates from speeds measured here; a stage shared by several runs counted once)")  # fmt: skip
    return lines
