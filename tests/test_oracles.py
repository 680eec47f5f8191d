"""Which oracles score a method and which are held out (klom_utils.oracles)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from klom_utils.layout import UNLEARN_RECORD, oracle_folder, unlearned_folder
from klom_utils.oracles import (
    held_out_oracle_ids,
    mean_logits,
    mean_oracle_logits,
    scoring_oracle_ids,
    used_oracle_ids,
)
from klom_utils.store import open_store


@pytest.fixture
def store(tmp_path):
    store = open_store(tmp_path, create=True)
    labels = np.array([0, 1, 2])
    for i in (0, 1, 2, 1000, 1001):
        logits = torch.full((3, 4), float(i))
        store.write_model(oracle_folder("X", 1), i, train_logits=logits, val_logits=logits,
                          train_labels=labels, val_labels=labels, epoch=0)
    store.write_json(f"{unlearned_folder('X', 'om', 1)}/{UNLEARN_RECORD}", {"oracle_ids": [1]})
    return store


def test_scoring_leaves_out_held_out_and_used_oracles(store):
    assert held_out_oracle_ids(store, "X", 1) == [1000, 1001]
    assert held_out_oracle_ids(store, "X", 2) == []
    assert used_oracle_ids(store, "X", 1, "om") == [1]
    assert used_oracle_ids(store, "X", 1, "other") == []
    assert scoring_oracle_ids(store, "X", 1) == [0, 1, 2]
    assert scoring_oracle_ids(store, "X", 1, "om") == [0, 2]


def test_mean_logits_of_oracles(store):
    mean = mean_oracle_logits(store, "X", 1, [0, 1000])
    assert mean.dtype == torch.float32 and torch.equal(mean, torch.full((3, 4), 500.0))
    both = mean_logits(store, oracle_folder("X", 1), [1, 2])
    np.testing.assert_array_equal(both, np.full((6, 4), 1.5))
    with pytest.raises(ValueError, match="at least one oracle"):
        mean_oracle_logits(store, "X", 1, [])
