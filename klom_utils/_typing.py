"""Type aliases of the public API, for annotations (modules import them under TYPE_CHECKING)."""

from __future__ import annotations

import os
from typing import Any, Dict, Union

from numpy.typing import ArrayLike

from .data import TensorDataset
from .store import Store

__all__ = ["ArrayLike", "DatasetLike", "PathLike", "Record", "StoreLike"]

#: A file or folder path.
PathLike = Union[str, "os.PathLike[str]"]
#: A :class:`~klom_utils.store.Store` or the path of one.
StoreLike = Union[Store, str, "os.PathLike[str]"]
#: A loaded dataset or its name (``"digits"``, ``"CIFAR10"``, ...).
DatasetLike = Union[TensorDataset, str]
#: A JSON-ready record or summary (nested dicts of numbers, strings and lists).
Record = Dict[str, Any]
