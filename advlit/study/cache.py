"""A content-keyed file cache: atomic writes, verified reads, one writer at a time."""

import contextlib
import hashlib
import io
import json
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import filelock
import torch

import advlit
from advlit.runtime.errors import ConfigError
from advlit.runtime.files import atomic_write

CACHE_ENV = "ADVLIT_CACHE"
log = logging.getLogger(__name__)


def cache_root(cache_dir: str | None = None) -> Path:
    """``cache_dir``, else ``$ADVLIT_CACHE``, else ``$XDG_CACHE_HOME/advlit`` (``~/.cache/advlit``)."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "advlit"


def content_key(description: dict) -> str:
    """A short hash of everything in ``description`` (JSON-able) and of advlit's cache format."""
    text = json.dumps({"format": advlit.CACHE_FORMAT, **description}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def tensor_digest(*tensors: torch.Tensor) -> str:
    """SHA-256 of the tensors' bytes (CPU copies): the identity of a dataset or a result."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(str((tuple(t.shape), t.dtype)).encode())
        h.update(t.detach().contiguous().cpu().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def weights_digest(net: torch.nn.Module) -> str:
    """SHA-256 of a network's weights and buffers."""
    return tensor_digest(*net.state_dict().values())


def made_path(path: Path) -> Path:
    """The note beside a cache entry that says how long it took to make."""
    return path.with_name(path.name + ".made.json")


def record_made(path: Path, seconds: float) -> None:
    """Note beside ``path`` that it took ``seconds`` to make (informational: never part of a key)."""
    atomic_write(json.dumps({"seconds": round(seconds, 3)}).encode(), made_path(path))


def made_seconds(path: Path) -> float | None:
    """The seconds :func:`record_made` noted for ``path``; None without a (readable) note."""
    try:
        return float(json.loads(made_path(path).read_text())["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def atomic_save(obj: dict, path: Path) -> None:
    """:func:`atomic_write` of ``obj`` as torch.save writes it."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write(buffer.getbuffer(), path)


def save_tensors(tensors: dict[str, torch.Tensor], meta: dict, path: Path) -> None:
    """Save named tensors with ``meta`` and a digest that :func:`load_tensors` checks."""
    cpu = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    atomic_save({"meta": meta, "tensors": cpu, "digest": tensor_digest(*cpu.values())}, path)


# Meta keys that describe how an entry was made, never compared: a network made on a GPU serves a CPU
# run and the other way round (the committed networks are the point), but says where it came from.
INFO_KEYS = frozenset({"made_on"})


def meta_matches(stored: dict, meta: dict, added: frozenset[str] = frozenset()) -> bool:
    """Whether a stored entry's meta is ``meta``; keys in ``added`` (added to the meta after the entry
    may have been written) are compared only where the stored meta has them; :data:`INFO_KEYS` never."""
    missing = {k for k in added if k not in stored} | INFO_KEYS
    return {k: v for k, v in stored.items() if k not in INFO_KEYS} == {
        k: v for k, v in meta.items() if k not in missing
    }


def load_tensors(path: Path, meta: dict, added: frozenset[str] = frozenset()) -> dict[str, torch.Tensor] | None:
    """The tensors saved at ``path`` if the file is whole and matches ``meta`` (see :func:`meta_matches`
    for ``added``); else None with a warning."""
    if not path.exists():
        return None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        ok = meta_matches(obj["meta"], meta, added) and obj["digest"] == tensor_digest(*obj["tensors"].values())
    except Exception as err:  # a truncated or foreign file is never trusted
        ok, obj = False, err
    if not ok:
        warnings.warn(f"advlit cache: {path} is corrupt or stale ({type(obj).__name__}); regenerating", stacklevel=2)
        return None
    return obj["tensors"]


LOCK_LOG_EVERY_S = 300.0  # a process waiting for another's entry says so this often


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``.lock: processes sharing a cache make an entry once.

    ``filelock``'s lock: flock where the file system has it, else (some NFS, Lustre without
    ``-o flock``, FUSE) its soft lock, a marker file naming the holder's host and PID, which a waiting
    process on the same host removes once that PID is gone (a crashed builder never blocks the others
    for good; a holder on another host that crashed leaves its marker, named in the waiting message).
    In a cache that cannot be written (read-only, or a file in the way) an existing entry is read
    without a lock; a missing one is a ConfigError naming the folder.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.with_name(f".{path.name}.{os.getpid()}.probe")  # not the lock file: a soft lock's marker
        with open(probe, "wb"):
            pass
        probe.unlink()
    except OSError as err:
        if path.is_file():
            yield
            return
        raise ConfigError(
            f"cache folder {path.parent} cannot be written ({err.strerror or err}); "
            "point --data.cache_dir or $ADVLIT_CACHE at a writable folder"
        ) from None
    lock = filelock.FileLock(path.with_name(path.name + ".lock"))
    while True:
        try:
            lock.acquire(timeout=LOCK_LOG_EVERY_S)
            break
        except filelock.Timeout:
            log.info("waiting for %s: another process is making it (lock %s)", path.name, lock.lock_file)
    try:
        yield
    finally:
        lock.release()
