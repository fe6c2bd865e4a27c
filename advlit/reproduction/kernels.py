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
WIDTH = {"DEFAULT": 0, "AVX2": 1, "AVX512": 2}  # x86 kernels, narrowest first
ATEN_ONLY = " (ATen pinned alone)"


def kernels_of(machine: dict) -> str:
    """A machine record's kernels: ATen's choice, marked where ATen alone was pinned (oneDNN and MKL
    then keep the CPU's widest kernels, and C&W's sets still differ)."""
    pins = machine.get("kernel_pins") or {}
    partial = "ATEN_CPU_CAPABILITY" in pins and "DNNL_MAX_CPU_ISA" not in pins
    return str(machine.get("cpu_capability")) + (ATEN_ONLY if partial else "")


def finished_kernels(folders: list[Path]) -> set[str]:
    """The kernels (:func:`kernels_of`) the finished CPU runs in ``folders`` record."""
    found = set()
    for folder in folders:
        try:
            record = json.loads((folder / "metrics.json").read_text())
        except (OSError, ValueError):
            continue
        machine = (record.get("provenance") or {}).get("machine") or {}
        if record.get("device") == "cpu" and machine.get("cpu_capability"):
            found.add(kernels_of(machine))
    return found


def advice(theirs: str, here: str) -> str:
    """How to make this machine use ``theirs``: the pins where they are narrower and known, else another machine."""
    if theirs in PINS and WIDTH.get(theirs, 99) < WIDTH.get(here.removesuffix(ATEN_ONLY), -1):
        return f"{PINS[theirs]} uses theirs"
    return f"a machine with {theirs} kernels makes theirs (pins cannot widen kernels)"


def kernel_note(folders: list[Path], here: dict | None = None) -> str | None:
    """One line when this machine's CPU kernels (``here``: a :func:`~advlit.runtime.provenance.machine`
    record; this process's by default) differ from the finished runs', with how to match them; None
    when they agree, nothing is finished, or the runs go to a GPU here."""
    from advlit.runtime.provenance import machine

    if here is None:
        import torch

        if torch.cuda.is_available():  # GPU runs make their own sets; nothing on the CPU pins them
            return None
        here = machine()
    mine = kernels_of(here)
    theirs = sorted(finished_kernels(folders) - {mine})
    if not theirs:
        return None
    return (f"note: the finished runs here used {', '.join(theirs)} CPU kernels and this machine uses {mine}: "
            f"its adversarial sets will differ from theirs in float rounding; "
            + "; ".join(advice(k, mine) for k in theirs))  # fmt: skip
