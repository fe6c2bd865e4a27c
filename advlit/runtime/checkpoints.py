"""Finding the checkpoint a killed training resumes from."""

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def newest_loadable(folder: Path) -> Path | None:
    """The newest ``*.ckpt`` in ``folder`` that loads as a Lightning checkpoint; None if none.

    A file cut short by a kill is skipped with a warning: Lightning writes the new checkpoint before
    it deletes the old one, so the one before it is still there.
    """
    import torch  # here, so that ``advlit reproduce`` starts without it

    for path in sorted(folder.glob("*.ckpt"), key=_mtime, reverse=True):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - any unreadable file: try the next one
            log.warning("skipping unreadable checkpoint %s", path)
            continue
        if isinstance(state, dict) and "epoch" in state and "state_dict" in state:
            return path
    return None


def epochs_behind(ckpt_path: str | None) -> int:
    """Epochs a fit resumed with ``--ckpt_path`` has behind it, read from the checkpoint file itself
    (its ``epoch``, 0-based, saved at that epoch's end), whatever its name; 0 for none, for a path that
    is not a file and for a file that does not load. Lightning's keywords (``last``, ``best``, ...) are
    the caller's to leave out (``experiment.lightning_keyword``): a file may carry such a name."""
    import torch

    path = Path(ckpt_path) if ckpt_path else None
    if path is None or not path.is_file():
        return 0
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(state["epoch"]) + 1
    except Exception:  # noqa: BLE001 - an estimate never stops a run; Lightning's own load reports the file
        return 0


def _mtime(path: Path) -> float:
    """A file's modification time; -1 for one a live run deleted since the listing (read last, skipped)."""
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return -1.0
