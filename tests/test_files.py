"""Atomic writes and safe reads of store files (klom_utils.files)."""

from __future__ import annotations

import os

import pytest

from klom_utils.files import atomic_write


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "a" / "file.npy"

    def fail(tmp):
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, fail)
    assert not target.exists() and os.listdir(tmp_path / "a") == []
    atomic_write(target, lambda tmp: tmp.write_bytes(b"whole"))
    assert target.read_bytes() == b"whole"


def test_damaged_files_are_named_and_tensors_are_copied(tmp_path):
    import numpy as np
    import torch

    from klom_utils.files import CorruptFileError, float_tensor, load_npy, load_torch, save_npy

    save_npy(tmp_path / "a.npy", np.arange(4))
    np.testing.assert_array_equal(load_npy(tmp_path / "a.npy"), np.arange(4))
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY truncated")
    with pytest.raises(CorruptFileError, match="bad.npy.*damaged"):
        load_npy(tmp_path / "bad.npy")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CorruptFileError, match="bad.pt"):
        load_torch(tmp_path / "bad.pt")
    batch = torch.zeros(3, 5, dtype=torch.float64)
    row = float_tensor(batch[1])
    assert row.dtype == torch.float32 and row.untyped_storage().nbytes() == 5 * 4


def test_cached_checkpoints_are_private_copies_and_follow_the_file(tmp_path):
    import torch

    from klom_utils.files import load_torch_cached, save_torch

    path = tmp_path / "sd.pt"
    save_torch(path, {"w": torch.ones(3)})
    first = load_torch_cached(path)
    first["w"].zero_()  # a caller changing its copy does not change the next caller's
    assert torch.equal(load_torch_cached(path)["w"], torch.ones(3))
    save_torch(path, {"w": torch.full((3,), 2.0)})  # rewritten (a new file): read again
    assert torch.equal(load_torch_cached(path)["w"], torch.full((3,), 2.0))
    save_torch(path, [1, 2])  # not a dict of tensors: loaded, not kept
    assert load_torch_cached(path) == [1, 2]


def test_a_checkpoint_rewritten_by_this_process_is_read_again(tmp_path):
    import torch

    from klom_utils.files import load_torch_cached, save_torch

    path = tmp_path / "sd.pt"
    for value in (1.0, 2.0, 1.0):  # same size each time: the cache must not serve the old one
        save_torch(path, {"w": torch.full((3,), value)})
        assert load_torch_cached(path)["w"][0] == value


def test_cached_margins_are_read_only_and_follow_the_file(tmp_path):
    import numpy as np

    from klom_utils.files import load_npy_cached, save_npy

    path = tmp_path / "m.npy"
    save_npy(path, np.arange(3.0))
    first = load_npy_cached(path)
    with pytest.raises(ValueError):  # shared with later callers: not to be changed in place
        first[0] = 9
    save_npy(path, np.arange(3.0) + 1)  # rewritten: read again
    assert load_npy_cached(path)[0] == 1.0
