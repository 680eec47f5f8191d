#!/usr/bin/env python
"""Time a local job array against a serial run of the same training (same run, same machine).

    .venv/bin/python scripts/bench_launch.py [--models 200] [--jobs 2 4] [--dataset digits]

Trains models 0..M-1 of DIGITS full models into a fresh temporary store, once in this process
(`klom train`, executor none) and once per job count as a submitit local job array
(`klom train --executor local --jobs J`), checks that the arrays' logits equal the serial
run's, and prints wall-clock seconds and the ratio serial / array. On a machine with C cores, J
jobs share them; each job also pays a process start and the dataset load.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from klom_utils.cli import main as klom


def run(store: Path, models: int, extra: list) -> float:
    start = time.perf_counter()
    status = klom(["train", "--dataset", "digits", "--store", str(store), "--models",
                   f"0-{models - 1}", "--device", "cpu", "--quiet", *extra])
    if status != 0:
        raise SystemExit(f"klom train failed ({status})")
    return time.perf_counter() - start


def logits(store: Path) -> dict:
    folder = store / "full_models" / "DIGITS"
    return {p.name: torch.load(p, weights_only=True).numpy() for p in folder.glob("*_logits_*")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--jobs", type=int, nargs="+", default=[2, 4])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        serial = run(Path(tmp) / "serial", args.models, [])
        reference = logits(Path(tmp) / "serial")
        rows = [("serial (this process)", serial, 1.0, True)]
        for jobs in args.jobs:
            store = Path(tmp) / f"jobs{jobs}"
            seconds = run(store, args.models, ["--executor", "local", "--jobs", str(jobs)])
            got = logits(store)
            same = got.keys() == reference.keys() and all(
                np.array_equal(got[k], reference[k]) for k in reference)
            rows.append((f"local job array, {jobs} jobs", seconds, serial / seconds, same))
    print(f"\n{args.models} DIGITS models, {torch.get_num_threads()} torch threads per process")
    print(f"{'run':<28s}{'seconds':>9s}{'serial / this':>15s}{'logits equal':>14s}")
    for name, seconds, ratio, same in rows:
        print(f"{name:<28s}{seconds:9.1f}{ratio:15.2f}{str(same):>14s}")


if __name__ == "__main__":
    main()
