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
