"""Forget sets: the DIGITS sets, writing them into a store, index checks (klom_utils.forget_sets)."""

from __future__ import annotations

import numpy as np
import pytest

from klom_utils import data, forget_sets
from klom_utils.store import open_store


def test_digits_forget_sets():
    d = data.load_digits()
    sets = forget_sets.digits_forget_sets(d)
    assert sorted(sets) == [1, 2, 3]
    assert [len(sets[k][0]) for k in (1, 2, 3)] == [10, 50, 50]
    for indices, description in sets.values():
        assert indices.dtype == np.int64 and np.all(np.diff(indices) > 0)
        assert indices.min() >= 0 and indices.max() < d.n_train and description
    # fixed contents (hash-ranked, independent of library versions)
    np.testing.assert_array_equal(sets[1][0], [329, 399, 544, 789, 790, 837, 976, 991, 1038, 1169])
    labels = d.train_y.numpy()[sets[3][0]]
    assert np.all(labels == 1) and 1 in sets[3][0]


def test_write_digits_forget_sets(tmp_path):
    store = open_store(tmp_path / "s", create=True)
    assert forget_sets.write_digits_forget_sets(store) == [1, 2, 3]
    np.testing.assert_array_equal(store.forget_set("DIGITS", 2), forget_sets.digits_forget_sets()[2][0])
    assert "sub-population" in store.forget_set_description("DIGITS", 3)
    store.write_forget_set("DIGITS", 1, [0, 1], description="mine")
    assert forget_sets.write_digits_forget_sets(store) == []  # existing sets are kept
    assert store.forget_set("DIGITS", 1).tolist() == [0, 1]


def test_retain_mask_and_index_checks():
    mask = forget_sets.retain_mask(5, [1, 3])
    assert mask.tolist() == [True, False, True, False, True]
    with pytest.raises(ValueError, match="index 7 is outside the train split"):
        forget_sets.retain_mask(5, [0, 7])
    with pytest.raises(ValueError, match="repeated"):
        forget_sets.check_forget_indices([1, 1], 5)
    with pytest.raises(ValueError, match="integer"):
        forget_sets.check_forget_indices([0.5], 5)
