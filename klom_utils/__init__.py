"""klom_utils: exact and fast KLOM (KL divergence of margins) for evaluating machine unlearning.

Nothing heavy happens at import time: public names are loaded from their modules on first use
(the ``TYPE_CHECKING`` imports below only tell type checkers and editors where they come from).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"  # the one place the version is written (pyproject.toml reads it)

if TYPE_CHECKING:
    from .comparison import compare
    from .data import load_dataset
    from .diagnostics import diagnose
    from .evaluate import score
    from .hub import download
    from .lens_tables import lens_table
    from .lenses import compute_lenses
    from .metric import headline, klom, margins, summarize
    from .models import load_model
    from .store import Store, open_store
    from .tables import results_table
    from .train import train_models
    from .uncertainty import noise_floor, p95_interval
    from .unlearning import register_method, unlearn_store

_EXPORTS = {
    "margins": "metric",
    "klom": "metric",
    "summarize": "metric",
    "p95_interval": "uncertainty",
    "noise_floor": "uncertainty",
    "diagnose": "diagnostics",
    "open_store": "store",
    "Store": "store",
    "headline": "metric",
    "download": "hub",
    "load_dataset": "data",
    "load_model": "models",
    "train_models": "train",
    "unlearn_store": "unlearning",
    "register_method": "unlearning",
    "score": "evaluate",
    "results_table": "tables",
    "compare": "comparison",
    "compute_lenses": "lenses",
    "lens_table": "lens_tables",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'klom_utils' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"klom_utils.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
