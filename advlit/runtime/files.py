"""Atomic file writes, without torch (the driver uses them too), and the temporary files of killed ones."""

import glob
import logging
import os
import socket
from pathlib import Path

log = logging.getLogger(__name__)


def temporary_path(path: Path, host: str | None = None, pid: int | None = None) -> Path:
    """The temporary file a writer on ``host`` with process id ``pid`` (default: this process) fills
    before renaming it to ``path``."""
    return path.with_name(f".{path.name}.{host or socket.gethostname()}.{pid or os.getpid()}.tmp")


def running_here(pid: int) -> bool:
    """Whether a process with id ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except OverflowError:  # no such pid
        return False
    return True


def remove_killed_writes(path: Path) -> None:
    """Delete the temporary files beside ``path`` that writers on this host left when they were killed
    mid-write (their process is gone). Another host's are left: its process ids cannot be checked here."""
    prefix, host = f".{path.name}.", socket.gethostname()
    for tmp in path.parent.glob(glob.escape(prefix) + "*.tmp"):
        writer_host, _, pid = tmp.name[len(prefix) : -len(".tmp")].rpartition(".")
        if writer_host == host and pid.isascii() and pid.isdigit() and not running_here(int(pid)):
            tmp.unlink(missing_ok=True)
            log.info("removed %s, left by a killed write", tmp.name)


def atomic_write(data: bytes | memoryview, path: Path) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it in place: readers see the
    old file or the whole new one, never a part. Temporary files of killed writes of ``path`` on this
    host go first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_killed_writes(path)
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
