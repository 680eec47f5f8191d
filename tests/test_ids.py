"""Model ids: ranges, parsing, slices between jobs, seeds from an id (klom_utils.ids)."""

from __future__ import annotations

import pytest

from klom_utils import ids
from klom_utils.ids import id_slices, shard_of


def test_model_seed_is_stable():
    assert ids.model_seed("DIGITS", "full", 0, "init") == 279912711312945072
    assert ids.model_seed("DIGITS", "full", 0, "init") != ids.model_seed(
        "DIGITS", "forget_set_1", 0, "init")
    assert ids.model_seed("DIGITS", "full", 0, "init", base=1) != ids.model_seed(
        "DIGITS", "full", 0, "init")


def test_id_slices_are_contiguous_balanced_and_never_empty():
    assert id_slices(range(10), 3) == [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9]]
    assert id_slices([4, 5], 8) == [[4], [5]]
    assert sum(id_slices(range(101), 4), []) == list(range(101))
    with pytest.raises(ValueError, match="positive integer, got 0"):
        id_slices(range(3), 0)


def test_shard_by_hand_and_from_a_slurm_array():
    ids = list(range(10))
    assert shard_of(ids, "1/3") == [3, 4, 5, 6]
    env = {"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_COUNT": "3",
           "SLURM_ARRAY_TASK_MIN": "10"}
    assert shard_of(ids, "auto", environ=env) == [7, 8, 9]
    with pytest.raises(ValueError, match="SLURM_ARRAY_TASK_ID"):
        shard_of(ids, "auto", environ={})
    for bad in ("3/3", "x", "1/0"):
        with pytest.raises(ValueError, match="shard"):
            shard_of(ids, bad)


def test_ranges_and_lists_of_ids():
    from klom_utils.ids import id_ranges, ids_text, parse_ids, parse_model_range

    assert parse_model_range("3-5") == range(3, 6)
    assert parse_ids("1000-1002,7, 5") == [5, 7, 1000, 1001, 1002]
    assert id_ranges([5, 0, 1, 2, 1000]) == "0-2, 5, 1000" and id_ranges([]) == "-"
    assert ids_text([4]) == "model 4" and ids_text([0, 1, 2]) == "models 0..2 (3 at once)"
    for bad in ("5-3", "a", "-1"):
        with pytest.raises(ValueError, match="model range"):
            parse_ids(bad)
