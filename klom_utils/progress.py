"""Progress of long loops: a bar on a terminal, plain lines in logs, or nothing.

``progress=True`` always draws a tqdm bar, ``False`` shows nothing, and ``None`` (the command
line's default) draws a bar when stderr is a terminal and otherwise writes one plain line per
update (job logs of SLURM or submitit, where a bar's carriage returns make unreadable files).
"""

from __future__ import annotations

import sys
import time
from typing import Any, Optional


class _Lines:
    """tqdm's ``update``/``close`` interface, writing ``desc: done/total unit (s)`` lines."""

    def __init__(self, total: int, desc: str, unit: str, stream):
        self.total, self.desc, self.unit, self.stream = total, desc, unit, stream
        self.n, self.start = 0, time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.n += n
        print(f"{self.desc}: {self.n}/{self.total} {self.unit}s "
              f"({time.perf_counter() - self.start:.1f} s)", file=self.stream, flush=True)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_bar(total: int, desc: str, progress: Optional[bool] = True, *, unit: str = "model",
                 stream=None):
    """A progress indicator for ``total`` steps (see the module's docstring for ``progress``)."""
    stream = sys.stderr if stream is None else stream
    if progress is None:
        progress = bool(getattr(stream, "isatty", lambda: False)())
        if not progress:
            return _Lines(total, desc, unit, stream)
    tqdm = tqdm_class()
    return tqdm(total=total, desc=desc, unit=unit, disable=not progress, file=stream)


def tqdm_class() -> Any:
    """tqdm.auto's ``tqdm`` (a widget in notebooks, text elsewhere), imported on first use and
    only here: importing it probes for Jupyter widgets and warns where they are missing, which
    must not happen when ``klom_utils`` is imported."""
    from tqdm.auto import tqdm

    return tqdm
