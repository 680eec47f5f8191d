"""Where models run: choosing the device, the torch settings while training or unlearning
(CPU threads, cuDNN autotuning), and splitting a stack of models over CPU threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

import torch

T = TypeVar("T")


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


def cpu_parts(n: int, threads, device) -> list[tuple[int, int]]:
    """``(start, stop)`` of the parts of a stack of ``n`` models that :func:`in_threads` runs at
    once: on the CPU with ``threads`` > 1, that many contiguous parts (at most ``n``); else one."""
    k = min(int(threads or 1), n) if torch.device(device).type == "cpu" else 1
    k = max(k, 1)
    edges = [(i * n) // k for i in range(k + 1)]
    return list(zip(edges[:-1], edges[1:]))


def in_threads(parts: list[tuple[int, int]], work: Callable[[int, int], T]) -> list[T]:
    """``work(start, stop)`` for each part, each in its own Python thread with one torch CPU
    thread; the results in order (one part: run here).

    The ops of a small stacked model are short, so torch's own threads spend them waiting on
    each other, and spin while they wait: on a loaded 2-core machine 2 torch threads trained
    DIGITS models many times slower than 1 (``scripts/bench_train.py --threads-compare``,
    ``scripts/bench_book.py``). Parts in Python
    threads share nothing while an op runs (torch releases the GIL), and each model's result
    does not depend on the stack it is in, so the models are the same, bit for bit."""
    if len(parts) == 1:
        return [work(*parts[0])]

    def run(part: tuple[int, int]) -> T:
        torch.set_num_threads(1)
        return work(*part)

    with ThreadPoolExecutor(len(parts)) as pool:
        return list(pool.map(run, parts))
