"""Model ids: ranges and their parsing, slices between jobs, and seeds derived from an id.

Every model is named by an integer id; everything random about it comes from :func:`model_seed`
of its identity, so the same id gives the same model whatever else runs beside it.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Iterable, List, Mapping, Optional, Sequence


def parse_model_range(text: str) -> range:
    """``"0-99"`` (inclusive, as in job arrays) or ``"7"`` -> a range of model ids."""
    text = str(text).strip()
    try:
        if "-" in text:
            lo, hi = (int(p) for p in text.split("-", 1))
        else:
            lo = hi = int(text)
    except ValueError:
        raise ValueError(f"model range {text!r}: expected 'I-J' (inclusive) or 'I'") from None
    if lo < 0 or hi < lo:
        raise ValueError(f"model range {text!r}: expected 0 <= I <= J")
    return range(lo, hi + 1)


def parse_ids(text: str) -> List[int]:
    """``"0-99"``, ``"7"`` or comma-separated ones (``"1000-1004,1007"``) -> sorted ids."""
    return sorted({i for part in str(text).split(",") if part.strip()
                   for i in parse_model_range(part)})


def id_ranges(ids: Iterable[int]) -> str:
    """``[0, 1, 2, 5, 1000]`` -> ``"0-2, 5, 1000"`` (``"-"`` when empty)."""
    ids = sorted({int(i) for i in ids})
    parts: List[str] = []
    start: Optional[int] = None
    for a, b in zip(ids, [*ids[1:], None]):
        start = a if start is None else start
        if b != a + 1:
            parts.append(str(a) if start == a else f"{start}-{a}")
            start = None
    return ", ".join(parts) or "-"


def ids_text(ids: Sequence[int]) -> str:
    """How a chunk of models is named in progress bars: ``model 7`` or ``models 0..99 (100
    at once)``."""
    if len(ids) == 1:
        return f"model {ids[0]}"
    return f"models {ids[0]}..{ids[-1]} ({len(ids)} at once)"


def model_seed(dataset: str, group: str, model_id: int, purpose: str, base: int = 0) -> int:
    """A 63-bit seed from the model's identity (stable across runs, machines and versions)."""
    text = f"klom/{base}/{dataset}/{group}/{int(model_id)}/{purpose}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") & (2**63 - 1)


def id_slices(model_ids: Sequence[int], n_slices: int) -> List[List[int]]:
    """``model_ids`` in ``n_slices`` contiguous slices of near-equal size (none empty)."""
    if isinstance(n_slices, bool) or not isinstance(n_slices, int) or n_slices < 1:
        raise ValueError(f"the number of jobs must be a positive integer, got {n_slices!r}")
    ids = list(model_ids)
    n = min(n_slices, len(ids)) or 1
    bounds = [round(j * len(ids) / n) for j in range(n + 1)]
    return [ids[bounds[j]:bounds[j + 1]] for j in range(n) if bounds[j + 1] > bounds[j]]


def shard_of(model_ids: Sequence[int], shard: str,
             environ: Optional[Mapping[str, str]] = None) -> List[int]:
    """The slice ``I`` of ``N`` of ``model_ids`` for ``shard="I/N"`` (0 <= I < N), or for
    ``shard="auto"`` the one of this SLURM array task."""
    env = os.environ if environ is None else environ
    if shard == "auto":
        try:
            index, count = int(env["SLURM_ARRAY_TASK_ID"]), int(env["SLURM_ARRAY_TASK_COUNT"])
        except (KeyError, ValueError):
            raise ValueError("--shard auto needs SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT "
                             "(it runs inside a SLURM job array); give --shard I/N by hand "
                             "elsewhere") from None
        offset = int(env.get("SLURM_ARRAY_TASK_MIN", 0))
        index -= offset
    else:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(shard))
        if not match:
            raise ValueError(f"--shard must be 'I/N' (e.g. '0/4') or 'auto', got {shard!r}")
        index, count = int(match[1]), int(match[2])
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index} of {count}: expected 0 <= I < N")
    slices = id_slices(model_ids, count)
    return slices[index] if index < len(slices) else []
