"""Whether a finished run of ``advlit reproduce`` was made with the flags given now: a finished run
is skipped, so counting one made with other settings would put its numbers in the wrong table."""

import json
from pathlib import Path

import yaml

from advlit.study.cache import atomic_write

FLAGS_FILE = "reproduce_flags.json"  # the extra flags a run was launched with, beside its metrics.json

# Flags that say where a run reads and writes, or how fast it goes, not what it computes (a key or
# the start of one): a finished run counts as done whatever they were.
NOT_COMPARED = ("data.data_dir", "data.download", "data.cache_dir", "data.progress", "data.eval_batch_size",
                "data.attack_batch_size", "transfer.eval_batch_size", "transfer.attack_batch_size", "threads",
                "trainer.enable_progress_bar", "trainer.logger", "ckpt_path")  # fmt: skip


def compared(key: str) -> bool:
    """Whether ``key`` (dotted) is a setting of what a run computes."""
    return not any(key == k or key.startswith(k + ".") for k in NOT_COMPARED)


def flag_values(flags: list[str]) -> dict[str, str]:
    """``{dotted key: value}`` of ``--key=value`` and ``--key value`` flags (a bare ``--key`` is
    ``true``); ``--config`` files are left out."""
    values, i = {}, 0
    while i < len(flags):
        flag = flags[i]
        if flag.startswith("--") and "=" in flag:
            key, value = flag[2:].split("=", 1)
        elif flag.startswith("--") and i + 1 < len(flags) and not flags[i + 1].startswith("--"):
            key, value, i = flag[2:], flags[i + 1], i + 1
        else:
            key, value = flag.removeprefix("--"), "true"
        if key != "config":
            values[key] = value
        i += 1
    return values


def matches(stored, value) -> bool:
    """Whether a flag's ``value`` (as YAML reads it) is the ``stored`` config value: numbers by value
    (``1e-3`` is 0.001), mappings on the keys the flag gives (the rest are the defaults the config
    filled in), lists item by item."""
    if isinstance(value, dict):
        return isinstance(stored, dict) and all(k in stored and matches(stored[k], v) for k, v in value.items())
    if isinstance(value, list):
        return isinstance(stored, list) and len(stored) == len(value) and all(map(matches, stored, value))
    if isinstance(stored, bool) or isinstance(value, bool):
        return stored == value
    if isinstance(stored, (int, float)):
        try:
            return float(value) == float(stored)
        except (TypeError, ValueError):
            return False
    return stored == value or str(stored) == str(value)


def lookup(config: dict, key: str) -> tuple[bool, object]:
    """``(found, value)`` of the dotted ``key`` in ``config``."""
    node = config
    for part in key.split("."):
        if not (isinstance(node, dict) and part in node):
            return False, None
        node = node[part]
    return True, node


def run_config(folder: Path) -> dict | None:
    """A finished run's resolved config: its config.yaml, else the copy in its metrics.json."""
    if (folder / "config.yaml").is_file():
        return yaml.safe_load((folder / "config.yaml").read_text()) or {}
    try:
        stored = json.loads((folder / "metrics.json").read_text()).get("config")
    except (OSError, ValueError, AttributeError):
        return None
    return yaml.safe_load(stored) if isinstance(stored, str) else stored if isinstance(stored, dict) else None


def record_flags(folder: Path, flags: list[str]) -> None:
    """Note beside a run the extra flags it is launched with."""
    atomic_write(json.dumps(flags).encode(), folder / FLAGS_FILE)


def differing_settings(folder: Path, flags: list[str]) -> list[str]:
    """What differs between the finished run in ``folder`` and the ``flags`` given now: each flag
    whose value is not the run's (its config), and each flag the run was launched with that is not
    given now (its note, where it has one). ``--config`` files and :data:`NOT_COMPARED` keys are not compared."""
    now = {k: v for k, v in flag_values(flags).items() if compared(k)}
    problems = []
    if (folder / FLAGS_FILE).is_file():
        then = {k: v for k, v in flag_values(json.loads((folder / FLAGS_FILE).read_text())).items() if compared(k)}
        problems += [f"--{k}={then[k]} then, not given now" for k in sorted(set(then) - set(now))]
    config = run_config(folder)
    if config is None:
        return [*problems, "no config.yaml to compare its settings with"]
    for key, text in now.items():
        found, stored = lookup(config, key)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        if found and not matches(stored, value):
            problems.append(f"{key}: {stored!r} -> {text}")
    return problems
