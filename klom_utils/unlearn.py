"""The former home of the unlearning methods, kept so that code written for it still runs
(``from klom_utils.unlearn import register_method, unlearn_store``): everything lives in
:mod:`klom_utils.unlearning` now; import from there."""

from __future__ import annotations

from .layout import HELD_OUT_ORACLE_START
from .layout import UNLEARN_RECORD as CONFIG_FILE
from .unlearning import (
                         ANY_DATASET,
                         DEFAULTS_FROM,
                         DIGITS_STACK,
                         KEY_RANGES,
                         METHOD_RANGES,
                         METHODS,
                         MethodSpec,
                         Outputs,
                         UnlearnData,
                         check_config,
                         datamodel_direct,
                         datamodel_matching,
                         default_config,
                         do_nothing,
                         get_method,
                         gradient_ascent,
                         gradient_descent,
                         held_out_oracle_ids,
                         model_generator,
                         neggrad_plus,
                         oracle_matching,
                         parse_overrides,
                         predict_logits,
                         register_method,
                         resolve_config,
                         unlearn_models,
                         unlearn_store,
)
from .unlearning.scrub import scrub

__all__ = ["ANY_DATASET", "CONFIG_FILE", "DEFAULTS_FROM", "DIGITS_STACK", "HELD_OUT_ORACLE_START",
           "KEY_RANGES", "METHODS", "METHOD_RANGES", "MethodSpec", "Outputs", "UnlearnData",
           "check_config", "datamodel_direct", "datamodel_matching", "default_config",
           "do_nothing", "get_method", "gradient_ascent", "gradient_descent",
           "held_out_oracle_ids", "model_generator", "neggrad_plus", "oracle_matching",
           "parse_overrides", "predict_logits", "register_method", "resolve_config", "scrub",
           "unlearn_models", "unlearn_store"]
