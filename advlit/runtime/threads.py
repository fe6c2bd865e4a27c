"""CPU threads per process: two torch processes that each take every core slow each other down.

torch starts one OpenMP thread per core in every process. Two such processes on one machine (a
background run beside the tests, two runs side by side) put twice as many busy threads as cores
on the CPU; OpenMP's threads spin at each barrier waiting for a partner that is descheduled, so
each process runs far slower than half speed. Measured on our 2-core VM (LeNet5, batch 128):
two processes with 2 threads each 4.9-7.6 batches/s each, with 1 thread each 10.8-11.2 each
(alone: 2 threads 17-18, 1 thread 10-12.5). Lightning's DDP launcher already gives each of its
processes ``cores // processes`` threads; separate processes need ``--threads`` (or
``OMP_NUM_THREADS``).
"""

import os

import torch

from advlit.runtime.errors import ConfigError


def cap_threads(threads: int | None) -> None:
    """Use ``threads`` intra-op threads in this process and its children (None: leave torch's default)."""
    if threads is None:
        return
    if threads < 1:
        raise ConfigError(f"threads={threads} must be >= 1 (or unset for one per core)")
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # DDP's launched processes and Lightning's own cap follow it
