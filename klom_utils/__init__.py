"""klom_utils: exact and fast KLOM (KL divergence of margins) for evaluating machine unlearning.

Nothing heavy happens at import time: public names are loaded from their modules on first use.
"""

__version__ = "0.1.0"

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
    "unlearn_store": "unlearn",
    "register_method": "unlearn",
    "score": "evaluate",
    "results_table": "evaluate",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'klom_utils' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"klom_utils.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
