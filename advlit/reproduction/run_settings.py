"""Whether a finished run of ``advlit reproduce`` was made with the settings its command gives now: a
finished run is skipped, so counting one made with other settings would put its numbers in the
wrong table. Both sides are full resolved configs: the run's config.yaml, and the command parsed
by advlit's own parser (config files, shorthands and defaults resolved as ``advlit fit`` would)."""

import copy
import functools
import json
import threading
import warnings
from pathlib import Path

import yaml

from advlit.runtime.config_diff import MISSING, config_changes

# Settings that say where a run reads and writes, how fast it goes or what it logs, not what it computes (a key or
# the start of one): a finished run counts as done whatever they were, but see BATCHED_BY.
NOT_COMPARED = ("data.data_dir", "data.download", "data.cache_dir", "data.progress", "data.eval_batch_size",
                "data.attack_batch_size", "transfer.eval_batch_size", "transfer.attack_batch_size", "threads",
                "trainer.enable_progress_bar", "trainer.enable_model_summary", "trainer.logger",
                "trainer.log_every_n_steps", "transfer.example_images", "ckpt_path", "weights_only")  # fmt: skip


# Registry names of the attacks whose random draws are per batch (``batch_consistent`` False), and the batch size
# each list of attacks runs at: where such an attack is in the list, that batch size changes what the run computes.
PER_BATCH_ATTACKS = ("torchattacks",)
BATCHED_BY = {"data.train_attacks": "data.attack_batch_size", "transfer.attacks": "transfer.attack_batch_size",
              "transfer.whitebox_attacks": "transfer.eval_batch_size"}  # fmt: skip


def compared(key: str, also: tuple[str, ...] = ()) -> bool:
    """Whether ``key`` (dotted) is a setting of what a run computes; ``also``: keys compared all the same."""
    return key in also or not any(key == k or key.startswith(k + ".") for k in NOT_COMPARED)


def batch_sizes_that_count(*configs: dict) -> tuple[str, ...]:
    """The batch-size keys that change what a run with any of ``configs`` computes: those of its
    attack lists that hold an attack drawing per batch (its sets' cache keys hold them)."""
    return tuple(size for attacks, size in BATCHED_BY.items()
                 if any(set(lookup(c, attacks) or []) & set(PER_BATCH_ATTACKS) for c in configs))  # fmt: skip


class _Parsed(Exception):
    """Carries the parsed CLI out of its constructor, before any class is instantiated."""


def parsed_config(fit_flags: tuple[str, ...]) -> dict:
    """The resolved config that ``advlit fit <fit_flags>`` would run with: parsed only (no class built,
    no global seed or thread count set; a fresh copy each call). A bad flag exits with the parser's own message.
    One parse at a time: the warning filters it sets are the process's (``reproduce --parallel`` has threads)."""
    with _PARSING:
        return copy.deepcopy(_parsed_config(fit_flags))


_PARSING = threading.Lock()


@functools.lru_cache(maxsize=256)
def _parsed_config(fit_flags: tuple[str, ...]) -> dict:
    from advlit.models import Classifier
    from advlit.study.datamodule import MNISTDataModule
    from advlit.study.experiment import TRAINER_DEFAULTS, AdvlitCLI

    class ParseOnly(AdvlitCLI):
        def _set_seed(self) -> None:
            pass

        def before_instantiate_classes(self) -> None:
            raise _Parsed(self)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LightningCLI's args-in-process note, jsonargparse's deprecations
        try:
            ParseOnly(Classifier, MNISTDataModule, trainer_defaults=TRAINER_DEFAULTS, seed_everything_default=0,
                      save_config_callback=None, args=list(fit_flags), run=False)  # fmt: skip
        except _Parsed as parsed:
            cli = parsed.args[0]
        return yaml.safe_load(cli.parser.dump(cli.config, skip_none=False)) or {}


def lookup(config: dict, key: str):
    """The value at dotted ``key`` of a nested config; None where any part is missing."""
    node = config
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def run_config(folder: Path) -> dict | None:
    """A finished run's resolved config: its config.yaml, else the copy in its metrics.json."""
    if (folder / "config.yaml").is_file():
        return yaml.safe_load((folder / "config.yaml").read_text()) or {}
    try:
        stored = json.loads((folder / "metrics.json").read_text()).get("config")
    except (OSError, ValueError, AttributeError):
        return None
    return yaml.safe_load(stored) if isinstance(stored, str) else stored if isinstance(stored, dict) else None


def differing_settings(old: dict, now: dict, default) -> list[str]:
    """``key: then -> now`` for each setting of the finished run's config ``old`` that the config
    ``now`` gives otherwise, leaving out :data:`NOT_COMPARED` (save the batch sizes of attacks that
    draw per batch, :func:`batch_sizes_that_count`). A setting ``old`` lacks (added to advlit since
    the run) differs only where ``now`` moves it from its default: ``default()`` gives the config of
    the same command without the extra flags (called only then)."""
    also = batch_sizes_that_count(old, now)
    changes = config_changes(old, now, lambda key: not compared(key, also), lambda: default() or {})
    return [f"{key}: not a setting of that run -> {value!r}" if then is MISSING
            else f"{key}: {then!r} -> {None if value is MISSING else value!r}"
            for key, then, value in changes]  # fmt: skip
