"""Type aliases of the public API, for annotations. ``StoreLike`` lives in
:mod:`klom_utils.store` and ``DatasetLike`` in :mod:`klom_utils.data`, beside their classes."""

from __future__ import annotations

import os
from typing import Any, Dict, Union

from numpy.typing import ArrayLike

__all__ = ["ArrayLike", "PathLike", "Record"]

#: A file or folder path.
PathLike = Union[str, "os.PathLike[str]"]
#: A JSON-ready record or summary (nested dicts of numbers, strings and lists).
Record = Dict[str, Any]
