"""Where models run: choosing the device, and the torch settings while training or
unlearning (CPU threads, cuDNN autotuning)."""

from __future__ import annotations

import platform

import torch


def resolve_device(device: str = "auto"):
    """``"auto"`` -> cuda when available, else cpu; ``"cuda"`` without a GPU is an error."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available: "
                         "use 'cpu' or 'auto'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} "
                         f"CUDA devices (cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    return dev


def device_label(device) -> str:
    """The device in words, precise enough to tell machines apart in cost records: the GPU's
    name for CUDA (``"cuda: NVIDIA H100 80GB HBM3"``), the processor's for the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"{device.type}: {_cpu_name()}"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown processor"


class device_settings:
    """Inside the block: ``threads`` torch CPU threads on the CPU (None: torch's setting),
    cuDNN autotuning on CUDA (fixed shapes: let cuDNN pick the fastest convolutions). Used
    while training and unlearning."""

    def __init__(self, threads, device):
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        device = torch.device(device)
        self.n = threads if device.type == "cpu" else None
        self.cuda = device.type == "cuda"

    def __enter__(self):
        self.old = torch.get_num_threads(), torch.backends.cudnn.benchmark
        if self.n:
            torch.set_num_threads(self.n)
        if self.cuda:
            torch.backends.cudnn.benchmark = True

    def __exit__(self, *exc):
        torch.set_num_threads(self.old[0])
        torch.backends.cudnn.benchmark = self.old[1]
