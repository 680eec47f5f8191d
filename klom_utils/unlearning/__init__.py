"""Unlearning methods: a registry, their configs, and applying one to the models of a store.

Modules: :mod:`~klom_utils.unlearning.registry` (``register_method``, ``get_method``),
:mod:`~klom_utils.unlearning.configs` (defaults, overrides, ranges),
:mod:`~klom_utils.unlearning.inputs` (``UnlearnData``, ``Outputs``),
:mod:`~klom_utils.unlearning.steps` (the built-in methods' building blocks), one module per
family of built-in methods (:mod:`~klom_utils.unlearning.descent`,
:mod:`~klom_utils.unlearning.scrub`, :mod:`~klom_utils.unlearning.matching`), and
:mod:`~klom_utils.unlearning.runner` (``unlearn_models``, ``unlearn_store``). Importing this
package registers the built-in methods.

A method is a function ``method(model, data, config, *, generator) -> model``:

- ``model`` is one trained ``nn.Module`` (a DIGITS MLP, a ResNet-9, ...); the method never
  changes it: it deep-copies it and returns the unlearned copy, in eval mode;
- ``data`` is an :class:`UnlearnData` (forget and retain examples as model inputs, and for
  methods that need oracles the mean logits of held-out oracles);
- ``config`` is a plain dict (the method's defaults for the dataset, with overrides applied);
- ``generator`` (a CPU ``torch.Generator``) drives every random choice, so results are
  deterministic given the model id (see :func:`model_generator`).

Many models at once. The built-in methods are written for a stack of models
(:class:`~klom_utils.stack.ModelStack`, the stacked MLP and grouped-convolution ResNet-9 that
training uses; ``register_method(..., stacked=True)``): each model draws its own data order
from its own generator and has its own loss, so a model unlearned among 100 is the one
unlearned alone (bit for bit on the CPU; a ResNet-9 stack on the GPU agrees to float
rounding). :func:`unlearn_store` unlearns 100 DIGITS models at once (``stack=``; on DIGITS
SCRUB takes about 4.5 s for 100 models instead of 42 s one at a time, ``scripts/
bench_unlearn.py``). Called on one model, a stacked method runs on a stack of one. Your own
methods work one model at a time unless registered with ``stacked=True``.

Built-in methods and their DIGITS defaults, chosen by the leave-one-out protocol of ``klom
compare`` (``scripts/choose_digits_defaults.py``, 8 settings per method from its declared
search space: for each forget set the setting best on the other two sets' scoring oracles;
the default is the setting chosen for most of the three sets, so no default was chosen on one
set's oracles alone). CIFAR10 defaults are the reference authors' settings, see
``default_config(method, "cifar10")``. SGD methods use momentum 0.9 and
weight decay 5e-4; an epoch is one pass over the forget set (GA, NegGrad+) or the retain set
(GD).

=================  ========================================================================
``do_nothing``     returns the original (the baseline)
``gradient_ascent``  ascent on F: lr 0.003, 3 epochs, batch 16
``gradient_descent`` descent on R: lr 0.03, 5 epochs, batch 64
``neggrad_plus``   ``alpha*CE(R) - (1-alpha)*CE(F)`` per step: lr 0.02, 3 epochs, alpha 0.8,
                   forget batch 16, retain batch 64
``scrub``          max steps ``-KL_T(teacher ‖ student)`` on F in the first 3 of 10 epochs,
                   min steps ``gamma*CE + alpha*KL_T`` on R: lr 0.02 (constant: no
                   ``lr_milestones``), temperature 4, gamma 0.99, alpha 0.5, forget batch 32,
                   retain batch 64
``oracle_matching``  MSE to the mean logits of the held-out oracles on F (×5) plus a retain
                   sample 20×|F|, fresh each epoch: Adam lr 1e-3, 10 epochs, batch 64,
                   lr ×0.95 per epoch
``datamodel_matching``  as oracle matching, but towards the model's own logits plus the
                   datamodel's predicted shift (no oracle): DIGITS the same settings with the
                   forget set ×10; CIFAR10 the authors' (Adam lr 1e-4, 4 epochs, batch 512)
                   with oracle matching's lr ×0.95 per epoch (our choice: the reference gives
                   that decay for oracle matching only)
``datamodel_direct``  no training: the model's logits plus the predicted shift, written as
                   the unlearned outputs (the method returns an :class:`Outputs`)
``random_labels``  forget set with random wrong labels plus the retain set (Graves et al.
                   2021): SGD lr 0.01, 3 epochs, batch 64
``salun``          random labels on the salient half of the weights (Fan et al. 2024):
                   fraction 0.5, SGD lr 0.01, 3 epochs
``l1_sparse``      retain set, cross-entropy + decaying l1 penalty (Jia et al. 2023): lr
                   0.01, 5 epochs, alpha 5e-4
``eu_k``           re-initialise and retrain the last k blocks on R (Goel et al. 2022): k 1,
                   lr 0.05, 10 epochs
``cf_k``           fine-tune only the last k blocks on R (Goel et al. 2022): k 1, lr 0.03,
                   5 epochs
``noisy_descent``  clipped, noisy SGD on R (EasyDUB): noise 0.01, clipping 1.0, lr 0.01,
                   3 epochs
=================  ========================================================================

The six baselines of the last rows (``relabel``, ``sparse``, ``last_layers``, and
``noisy_descent`` in ``descent``) keep retain accuracy within 0.03 of the originals' at their
DIGITS defaults (tests/test_baselines.py); their DIGITS defaults are starting points, not
tuned on the scoring oracles: ``klom compare`` chooses their settings by leave-one-out.

The datamodel methods read the store's ``datamodels/<D>/datamodel.npy`` (``klom
datamodels``; :mod:`klom_utils.datamodels`) or a file given as ``datamodel=``, and use no
oracle. On DIGITS (datamodel from 2,000 subset models at fraction 0.5, ridge 0.05, shifts
shrunk by their noise; 100 models against 100 oracles; forget p95 of do nothing / oracle
matching / datamodel matching / datamodel direct): set 1 6.55 / 0.75 / 0.83 / 0.87, set 2
9.98 / 1.13 / 1.12 / 1.45, set 3 9.60 / 0.92 / 1.51 / 1.63, with retain and validation p95 at
most 1.50 and test accuracy 0.971-0.973 (originals 0.972). DIGITS datamodel matching takes
the forget set 10 times per epoch (oracle matching 5): on set 3 the shift was learnt more
fully (1.51 against 1.77). ``shrink=False`` uses the datamodel's shift as estimated.

SCRUB on DIGITS with its former defaults (lr 0.05, alpha 0.1, max steps in the first 5
epochs: chosen with ``scripts/tune_scrub.py`` on the scoring oracles; leave-one-out now keeps
them for set 3 only, and chooses lr 0.02, alpha 0.5, max steps in 3 epochs for sets 1 and 2)
(100 models, KLOM p95 against 100 oracles, do nothing in brackets; accuracy
forget/retain/test, do nothing 1.000/1.000/0.972; measured with
``scripts/tune_scrub.py`` with the former one-model-at-a-time code; the stacked code agrees
to float rounding, but on set 3 SCRUB is chaotic: a 1e-7 relative change of the weights
moves the former code's own logits by up to 4.6 after 10 epochs, and old and new logits
differ on that scale, median 0.09, over 20 models):

==========  ===============  ===============  ===============  =================
forget set  forget p95       retain p95       validation p95   accuracy
==========  ===============  ===============  ===============  =================
1 (n=10)    2.34 (6.55)      1.43 (0.79)      1.11 (0.78)      0.997/1.000/0.972
2 (n=50)    3.79 (9.98)      2.62 (1.36)      2.34 (1.85)      0.994/1.000/0.974
3 (n=50)    6.02 (9.60)      5.79 (0.94)      5.26 (1.14)      0.928/0.987/0.957
==========  ===============  ===============  ===============  =================

Of the grid tried then (lr 0.01 to 0.2, 4 to 10 epochs, max steps in 1 to 5 epochs, alpha 0.1 to
2, gamma 0.1 or 0.99, forget batch 8 to 32, lr x0.1 after the max epochs or not), only these
settings clearly lowered the forget KLOM of the small random set 1 (the others: 5.7 to 6.5);
5-epoch runs (half the cost) left set 1 near do nothing; lr >= 0.1 with alpha >= 1, or max
steps in every epoch, wrecked accuracy. SCRUB moves retain and validation margins too.

Your own method: a function with the same signature, registered (then usable by name, also
from ``klom unlearn --plugin MODULE --method NAME``) or passed to :func:`unlearn_store`
directly; it is scored like the built-in ones::

    import copy, torch, torch.nn.functional as F
    from klom_utils.unlearning import register_method, unlearn_store
    from klom_utils.evaluate import score

    @register_method("last_layer_ascent", {"lr": 0.05, "steps": 5})
    def last_layer_ascent(model, data, config, *, generator):
        model = copy.deepcopy(model).train()
        last = list(model.parameters())[-2:]  # fine-tune only the last layer
        opt = torch.optim.SGD(last, lr=config["lr"])
        for _ in range(config["steps"]):
            opt.zero_grad()
            (-F.cross_entropy(model(data.forget_x), data.forget_y)).backward()
            opt.step()
        return model.eval()

    unlearn_store("runs/store", "digits", 3, "last_layer_ascent", range(100))
    print(score("runs/store", "digits", 3, "last_layer_ascent")["forget"]["p95"])

Held-out oracles. Oracle matching trains towards the outputs of oracles, so the oracles it
uses must not be the ones it is scored against. The convention: in
``oracles/<D>/forget_set_<k>``, oracle ids ``>= HELD_OUT_ORACLE_START`` (1000,
:mod:`klom_utils.layout`) are held out:
methods may use them, scoring never does (train them with ``klom train --models 1000-1009
--forget-set k``). An explicit list (``oracle_ids=``) may be given instead; it is recorded
beside the unlearned models and scoring then leaves those oracles out as well.
"""

from __future__ import annotations

from ..layout import HELD_OUT_ORACLE_START
from ..oracles import held_out_oracle_ids
from ..stack import predict_logits
from . import (  # noqa: F401  (registers the built-in methods)
    descent,
    last_layers,
    matching,
    relabel,
    scrub,
    sparse,
)
from .configs import (
    DEFAULTS_FROM,
    KEY_RANGES,
    METHOD_RANGES,
    check_config,
    default_config,
    parse_overrides,
    resolve_config,
)
from .descent import do_nothing, gradient_ascent, gradient_descent, neggrad_plus, noisy_descent
from .inputs import Outputs, UnlearnData
from .last_layers import cf_k, eu_k
from .matching import datamodel_direct, datamodel_matching, oracle_matching
from .registry import ANY_DATASET, METHODS, MethodSpec, get_method, register_method
from .relabel import random_labels, salun
from .runner import DIGITS_STACK, unlearn_models, unlearn_store
from .sparse import l1_sparse
from .steps import model_generator

__all__ = ["ANY_DATASET", "DEFAULTS_FROM", "DIGITS_STACK", "HELD_OUT_ORACLE_START", "KEY_RANGES",
           "METHODS", "METHOD_RANGES", "MethodSpec", "Outputs", "UnlearnData", "check_config",
           "datamodel_direct", "datamodel_matching", "default_config", "do_nothing",
           "get_method", "gradient_ascent", "gradient_descent", "held_out_oracle_ids",
           "model_generator", "neggrad_plus", "oracle_matching", "parse_overrides",
           "predict_logits", "register_method", "resolve_config", "unlearn_models",
           "unlearn_store", "random_labels", "salun", "l1_sparse", "eu_k", "cf_k",
           "noisy_descent"]
