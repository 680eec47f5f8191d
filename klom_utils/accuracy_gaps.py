"""Accuracy views of unlearned against retrained models, from margins alone.

A model classifies an example right exactly when its margin (correct-class logit minus the
largest other logit) is positive, so accuracies need no logits. Per group (forget, retain,
validation: the held-out split, the "test" accuracy of the literature):

* the mean accuracy of the unlearned models and of the oracles, and their gap
  (unlearned minus oracle; 0 for a perfect method, up to 1 in absolute value);
* the average gap: the mean of the three absolute gaps (the "Avg. Gap" of SalUn and of
  Jia et al. 2023, here without the MIA term);
* ToW, "tug of war" (Zhao et al. 2024, "What makes unlearning hard and what to do about it"):
  the product over the three groups of ``1 - |gap|``; 1 for a perfect method, 0 at worst.
"""

from __future__ import annotations

import numpy as np

__all__ = ["model_accuracies", "accuracy_gaps", "GAP_GROUPS"]

GAP_GROUPS = ("forget", "retain", "validation")


def model_accuracies(margins: np.ndarray, forget: np.ndarray, n_train: int) -> np.ndarray:
    """Per model (row), the fraction of the forget, retain and validation examples (train
    columns ``forget``, the other train columns, the columns from ``n_train`` on) with a
    positive margin: ``(n_models, 3)``."""
    train = np.count_nonzero(margins[:, :n_train] > 0, axis=1)
    lost = np.count_nonzero(margins[:, forget] > 0, axis=1)
    val = np.count_nonzero(margins[:, n_train:] > 0, axis=1)
    n_val = margins.shape[1] - n_train
    return np.stack([lost / len(forget), (train - lost) / (n_train - len(forget)),
                     val / n_val], axis=1)


def accuracy_gaps(acc_u: np.ndarray, acc_o: np.ndarray) -> np.ndarray:
    """From per-model accuracies ``(n_models, 3)`` of each side (groups in ``GAP_GROUPS``
    order): ``[acc_u x3, acc_o x3, gap x3, average gap, ToW]`` of the means over models."""
    mu, mo = acc_u.mean(axis=0), acc_o.mean(axis=0)
    gap = mu - mo
    return np.concatenate([mu, mo, gap, [np.abs(gap).mean(), np.prod(1 - np.abs(gap))]])
