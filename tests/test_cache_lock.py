"""The cache's lock: one builder per entry, also where the file system has no flock, and a crashed
builder's lock recovered."""

import errno
import fcntl
import logging
import subprocess
import sys
import threading
import time

import pytest

from advlit.study import cache


@pytest.fixture
def no_flock(monkeypatch):
    """A file system without flock (Lustre without -o flock, some NFS and FUSE mounts): ENOSYS."""

    def flock(fd, op):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", flock)


def hold(path, seconds: float, events: list) -> None:
    with cache.locked(path):
        events.append(("in", time.monotonic()))
        time.sleep(seconds)
        events.append(("out", time.monotonic()))


@pytest.mark.parametrize("flock", [True, False], ids=["flock", "without flock"])
def test_one_process_at_a_time_holds_an_entry(tmp_path, request, flock):
    if not flock:
        request.getfixturevalue("no_flock")
    path, events = tmp_path / "entry.pt", []
    first = threading.Thread(target=hold, args=(path, 0.5, events))
    first.start()
    time.sleep(0.1)
    hold(path, 0.0, events)
    first.join()
    assert [e for e, _ in events] == ["in", "out", "in", "out"], "the second waited for the first"


def test_a_crashed_builders_soft_lock_does_not_block_for_good(tmp_path, no_flock):
    path = tmp_path / "entry.pt"
    marker = path.with_name(path.name + ".lock")
    holder = (
        "import filelock, os, sys; lock = filelock.SoftFileLock(sys.argv[1]); lock.acquire(); "
        "print('held', flush=True); os._exit(0)"  # dies holding the soft lock: its marker stays
    )
    out = subprocess.run([sys.executable, "-c", holder, str(marker)], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "held" and marker.exists(), out.stderr
    start = time.monotonic()
    with cache.locked(path):
        pass
    assert time.monotonic() - start < 30, "the dead holder's marker is removed"


def test_a_waiting_process_says_what_it_waits_for(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(cache, "LOCK_LOG_EVERY_S", 0.1)
    path, events = tmp_path / "entry.pt", []
    first = threading.Thread(target=hold, args=(path, 0.5, events))
    first.start()
    time.sleep(0.1)
    with caplog.at_level(logging.INFO, logger="advlit.study.cache"):
        hold(path, 0.0, events)
    first.join()
    assert any("waiting for entry.pt" in r.getMessage() for r in caplog.records)
