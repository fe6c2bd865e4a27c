"""The device a benchmark runs on: chosen by name, described in words, synchronised for timing."""

import platform

import torch


def describe_device(device: torch.device) -> str:
    """The hardware in words: GPU name, or CPU model and thread count."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu}, {torch.get_num_threads()} threads (torch {torch.__version__})"


def pick_device(name: str) -> torch.device:
    """``auto``: cuda when available, else cpu; ``gpu`` or ``cuda``: cuda; ``cpu``: cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device("cuda" if name == "gpu" else name)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so that a timer reads its end."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def exact_fp32() -> None:
    """Matrix products and convolutions in full fp32 on every device: no TF32 on recent GPUs (torch's
    default for cuDNN convolutions), so attacks, scores and training compute what the CPU computes,
    up to the order of operations."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")


def default_adam(device: torch.device | str) -> str:
    """``fused`` on CUDA (one kernel launch per step), else ``default``: torch's own choice."""
    return "fused" if torch.device(device).type == "cuda" else "default"


def default_eval_batch(device: torch.device | str) -> int:
    """Images per scoring batch: 5,000 on a GPU (fewer launches), 500 on the CPU."""
    return 5000 if torch.device(device).type == "cuda" else 500


def float_settings(device: torch.device | str, adam: str | None = None) -> dict:
    """The device kind and float settings an entry or a run was made with (for its metadata);
    ``adam``: the Adam implementation it trained with (:func:`default_adam` when not given)."""
    kind = torch.device(device).type
    tf32 = torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32
    return {"device": kind, "dtype": "float32", "tf32": bool(tf32) if kind == "cuda" else False,
            "adam": adam or default_adam(device)}  # fmt: skip
