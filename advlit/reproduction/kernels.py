"""Which CPU kernels a table's finished runs were made with, beside this machine's.

torch picks its CPU kernels by the CPU's vector extensions (AVX2, AVX-512, ...), and the float
rounding differs between them: the same committed network makes adversarial sets that differ on an
AVX-512 machine from an AVX2 one (docs/reproduction.md, "Networks that outlive a machine"), while
pinning torch's, oneDNN's and MKL's kernels to AVX2 there makes them again bit for bit (ATen's
alone does not: C&W's sets still differ). A table whose runs mix kernels compares sets that differ
in float rounding, so ``advlit reproduce`` says so in one line before it starts.
"""

import json
from pathlib import Path

# The settings that make a machine with wider vector units use a narrower machine's kernels
# (measured for AVX2 on an AVX-512 AMD EPYC: the sets bit for bit; docs/reproduction.md).
PINS = {"AVX2": "ATEN_CPU_CAPABILITY=avx2 DNNL_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 MKL_CBWR=AVX2"}


def finished_kernels(folders: list[Path]) -> set[str]:
    """The CPU kernels (``AVX2``, ``AVX512``, ...) the finished CPU runs in ``folders`` record."""
    found = set()
    for folder in folders:
        try:
            record = json.loads((folder / "metrics.json").read_text())
        except (OSError, ValueError):
            continue
        kernels = ((record.get("provenance") or {}).get("machine") or {}).get("cpu_capability")
        if record.get("device") == "cpu" and kernels:
            found.add(kernels)
    return found


def kernel_note(folders: list[Path], here: str | None = None) -> str | None:
    """One line when this machine's CPU kernels (``here``; torch's choice by default) differ from
    the finished runs', naming the setting that pins them; None when they agree or nothing is finished."""
    import torch

    if here is None:
        if torch.cuda.is_available():  # GPU runs make their own sets; nothing on the CPU pins them
            return None
        here = torch.backends.cpu.get_cpu_capability()
    theirs = finished_kernels(folders) - {here}
    if not theirs:
        return None
    pinned = " or ".join(
        PINS.get(k, f"ATEN_CPU_CAPABILITY={k.lower()} with oneDNN's and MKL's kernels") for k in sorted(theirs)
    )
    return (f"note: the finished runs here used {', '.join(sorted(theirs))} CPU kernels and this machine uses {here}: "
            f"its adversarial sets will differ from theirs in float rounding; {pinned} uses theirs")  # fmt: skip
