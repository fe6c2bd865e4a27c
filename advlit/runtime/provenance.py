"""Where a result came from: the code's git commit, the library versions, the machine."""

import functools
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def cpuinfo_field(name: str, cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The first value of the field ``name`` in ``cpuinfo`` (Linux); None where the file or field is absent."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str | None:
    """The CPU's model name as the OS reports it (Linux: /proc/cpuinfo), else ``platform.processor()``."""
    return cpuinfo_field("model name") or platform.processor() or None


# x86 vector extensions whose kernels round floats differently (docs/reproduction.md)
VECTOR_EXTENSIONS = ("avx2", "avx512f", "avx512_bf16", "amx_tile")


def cpu_extensions(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str] | None:
    """Which of :data:`VECTOR_EXTENSIONS` the CPU offers (Linux: the ``flags`` of ``cpuinfo``), whatever
    torch is pinned to use; None where the OS does not say (another OS, an ARM CPU)."""
    flags = cpuinfo_field("flags", cpuinfo)
    if flags is None:
        return None
    return [name for name in VECTOR_EXTENSIONS if name in flags.split()]


# Settings that pin the CPU kernels of torch (ATen), oneDNN and MKL below what the CPU offers
# (docs/reproduction.md, "Networks that outlive a machine")
KERNEL_PINS = ("ATEN_CPU_CAPABILITY", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR")


def machine() -> dict:
    """The hardware a figure comes from: CPU model, cores this process may use, torch's threads, the
    CPU's vector extensions torch uses, the settings that pin them (``kernel_pins``), those the CPU
    offers (``cpu_extensions``) and the GPU (None without one)."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    pins = {name: os.environ[name] for name in KERNEL_PINS if os.environ.get(name)}
    return {"cpu": cpu_model(), "cores": cores, "torch_threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "kernel_pins": pins,
            "cpu_extensions": cpu_extensions(), "gpu": gpu}  # fmt: skip


def provenance() -> dict:
    """The git commit advlit runs from (None outside a checkout) and whether the tree was dirty, the
    versions of advlit, torch, torchvision and lightning, Python, the platform and the machine
    (:func:`machine`)."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    versions = {}
    for package in ("advlit", "torch", "torchvision", "lightning", "torchmetrics"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "git_commit": commit,
        "git_dirty": None if status is None else bool(status),
        "versions": versions,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": machine(),
    }


@functools.lru_cache(maxsize=1)
def process_provenance() -> dict:
    """:func:`provenance` read once per process, at its first call: advlit's command line calls it
    as it starts, so a run records the code it imported even when the checkout moves on while it
    runs (a background run beside development)."""
    return provenance()
