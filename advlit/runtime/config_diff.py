"""Two resolved configs compared setting by setting: a finished run's against the command that would
make it now (``advlit reproduce``), a checkpoint's run against the run resuming it (``advlit fit``)."""

from collections.abc import Callable

MISSING = object()  # a setting one side does not have


def config_changes(old, new, skip: Callable[[str], bool], default: Callable[[], object], prefix: str = "") -> list:
    """``(dotted key, old value, new value)`` for every setting whose values differ (:data:`MISSING`
    where a side lacks it), leaving out the keys (and sections) for which ``skip`` is true.

    Sections are compared key by key, and lists of sections of one length (``transfer.attackers``)
    entry by entry (``transfer.attackers[1].members``). A setting ``old`` lacks, added to advlit since
    that run was made, counts only where ``new`` moves it from its default: ``default()`` gives the
    default config of the same shape (called only then; :data:`MISSING`: every such setting counts).
    """
    if isinstance(new, dict) and (isinstance(old, dict) or old is MISSING):
        old = {} if old is MISSING else old  # a whole section added since: each of its keys as above
        changes = []
        for key in sorted(set(old) | set(new)):
            if not skip(prefix + key):
                entry = lambda k=key: _entry(default(), k)  # noqa: E731
                changes += config_changes(old.get(key, MISSING), new.get(key, MISSING), skip, entry, f"{prefix}{key}.")
        return changes
    if _section_lists(old, new):
        return [change for i, (a, b) in enumerate(zip(old, new, strict=True))
                for change in config_changes(a, b, skip, lambda i=i: _entry(default(), i),
                                             f"{prefix[:-1]}[{i}].")]  # fmt: skip
    if old is MISSING and new == default():
        return []
    return [] if old == new else [(prefix[:-1], old, new)]


def _section_lists(a, b) -> bool:
    """Whether ``a`` and ``b`` are lists of dicts of one length."""
    return (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
            and all(isinstance(x, dict) for x in a + b))  # fmt: skip


def _entry(config, key: str | int):
    """``config[key]`` of a default config (a dict's key or a list's index), :data:`MISSING` where there is none."""
    if isinstance(config, dict):
        return config.get(key, MISSING)
    if isinstance(config, list) and isinstance(key, int) and key < len(config):
        return config[key]
    return MISSING
