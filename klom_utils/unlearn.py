"""The former home of the unlearning methods, kept so that code written for it still runs
(``from klom_utils.unlearn import register_method, unlearn_store``): everything lives in
:mod:`klom_utils.unlearning` now; import from there. Every name of that package is found
here too, as are ``CONFIG_FILE`` (the record's name) and the function ``scrub``."""

from __future__ import annotations

from typing import Any

from . import unlearning
from .layout import UNLEARN_RECORD as CONFIG_FILE  # noqa: F401
from .unlearning.scrub import scrub  # noqa: F401  (here the function, not the module)


def __getattr__(name: str) -> Any:
    try:
        return getattr(unlearning, name)
    except AttributeError:
        raise AttributeError(f"module 'klom_utils.unlearn' has no attribute {name!r}") from None
