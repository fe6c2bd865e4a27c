"""The cache's writes: atomic, and the temporary files of killed writes cleared."""

import os
import socket
import subprocess
import sys

import pytest

from advlit.runtime import files

KILLED_MID_WRITE = """
import os, sys
from pathlib import Path
from advlit.runtime import files
os.fsync = lambda fd: os._exit(9)  # killed after writing, before the rename
files.atomic_write(b"half", Path(sys.argv[1]))
"""


def test_a_killed_writes_temporary_file_goes_with_the_next_write(tmp_path):
    entry = tmp_path / "set.pt"
    done = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(entry)], check=False)
    assert done.returncode == 9
    left = list(tmp_path.glob(".set.pt.*.tmp"))
    assert len(left) == 1 and not entry.exists(), "the killed write leaves its temporary file, never the entry"
    files.atomic_write(b"whole", entry)
    assert entry.read_bytes() == b"whole"
    assert not left[0].exists(), "the next write of the entry removes it"


@pytest.mark.parametrize("host", [None, "node7.cluster.example.org"], ids=["this host's name", "a dotted name"])
@pytest.mark.parametrize("name", ["set.pt", "set[0]*.pt"], ids=["entry", "entry with glob characters"])
def test_only_this_hosts_ended_writers_files_are_removed(tmp_path, monkeypatch, host, name):
    if host:
        monkeypatch.setattr(files.socket, "gethostname", lambda: host)
    entry, here = tmp_path / name, socket.gethostname()
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    ended_pid = int(ended.stdout)
    gone = files.temporary_path(entry, here, ended_pid)
    running = files.temporary_path(entry, here, os.getppid())  # a writer still at work
    elsewhere = files.temporary_path(entry, "another-node", ended_pid)  # its pid means nothing here
    other_entry = files.temporary_path(tmp_path / f"{name}.made.json", here, ended_pid)
    for f in (gone, running, elsewhere, other_entry):
        f.write_bytes(b"x")
    files.atomic_write(b"whole", entry)
    assert not gone.exists()
    assert running.exists() and elsewhere.exists(), "a live writer's and another host's files stay"
    assert other_entry.exists(), "another entry's files wait for that entry's next write"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [name, running.name, elsewhere.name, other_entry.name]
    ), "and no temporary file of this write is left"


def test_a_stray_file_with_a_pid_no_process_can_have_does_not_stop_writes(tmp_path):
    entry = tmp_path / "set.pt"
    for pid in ("9" * 30, "\u00b2"):  # past any pid; a digit Python's int() refuses
        (tmp_path / f".set.pt.{socket.gethostname()}.{pid}.tmp").write_bytes(b"x")
    files.atomic_write(b"whole", entry)
    assert entry.read_bytes() == b"whole"
