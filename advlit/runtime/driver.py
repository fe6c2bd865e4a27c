"""A run started by ``advlit reproduce`` ends with it: the driver names itself in the run's
environment, and the run asks Linux to kill it when the driver dies, ``kill -9`` included. Without
this, a run outlives a killed driver and holds no run lock, so a new driver could start the same
run beside it in the same folder."""

import ctypes
import os
import signal
import sys

DRIVER_PID = "ADVLIT_DRIVER_PID"
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def child_env() -> dict[str, str]:
    """The environment of a run this process starts: its own, naming this process as the driver."""
    return {**os.environ, DRIVER_PID: str(os.getpid())}


def end_with_driver() -> bool:
    """In a run started by a driver: have Linux send SIGKILL when the driver dies (each run resumes
    from its last epoch's checkpoint), and exit at once if it died already. The variable then names
    this process, so the DDP ranks it starts end with it in turn. True when bound; elsewhere a no-op."""
    pid = os.environ.pop(DRIVER_PID, None)  # unbound: none of this process's children see it
    if pid is None or not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return False
    if os.getppid() != int(pid):  # the driver died before the prctl: nobody waits for this run
        print("advlit: the advlit reproduce that started this run has ended; stopping", file=sys.stderr)
        sys.exit(1)
    os.environ[DRIVER_PID] = str(os.getpid())  # the ranks Lightning starts from here bind to this process
    return True
