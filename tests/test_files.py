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


def test_what_this_process_writes_is_read_back_from_memory(tmp_path, monkeypatch):
    import numpy as np
    import torch

    import klom_utils.files as files

    logits, margins = torch.arange(6.0).reshape(3, 2), np.arange(3.0)
    files.save_torch(tmp_path / "l.pt", logits, keep=True)
    files.save_npy(tmp_path / "m.npy", margins, keep=True)
    files.save_torch(tmp_path / "h.pt", logits.double(), keep=True)  # kept as float32
    logits += 5  # the caller's objects change later: the cache keeps what was written
    margins += 5
    monkeypatch.setattr(files, "load_torch", lambda p: pytest.fail(f"{p} read from disk"))
    monkeypatch.setattr(files, "load_npy", lambda p: pytest.fail(f"{p} read from disk"))
    for name in ("l.pt", "h.pt"):
        got = files.load_tensor_cached(tmp_path / name)
        assert got.dtype == np.float32 and not got.flags.writeable
        np.testing.assert_array_equal(got, np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(files.load_npy_cached(tmp_path / "m.npy"), np.arange(3.0))
    monkeypatch.undo()
    # what cannot be kept is written all the same, and read from the file
    files.save_torch(tmp_path / "s.pt", {"w": torch.ones(2), "step": 3}, keep=True)
    files.save_torch(tmp_path / "g.pt", torch.ones(2, requires_grad=True), keep=True)
    assert torch.load(tmp_path / "s.pt")["step"] == 3
    assert files.load_tensor_cached(tmp_path / "g.pt").tolist() == [1.0, 1.0]
    big = torch.zeros(100, 50)
    torch.save(big[3], tmp_path / "v.pt")  # a view: the file holds the whole storage
    assert files.load_tensor_cached(tmp_path / "v.pt").base is None or \
        files.load_tensor_cached(tmp_path / "v.pt").base.nbytes == 50 * 4
    torch.save(torch.ones(3, 2), tmp_path / "l.pt")  # another writer: the file changed, read again
    assert files.load_tensor_cached(tmp_path / "l.pt")[0, 0] == 1.0
    (tmp_path / "d.pt").write_bytes(b"junk")
    with pytest.raises(files.CorruptFileError, match="d.pt"):
        files.load_tensor_cached(tmp_path / "d.pt")
    torch.save({"w": logits}, tmp_path / "n.pt")
    with pytest.raises(files.CorruptFileError, match="expected one tensor"):
        files.load_tensor_cached(tmp_path / "n.pt")


def test_temporary_names_are_hidden_and_unique(tmp_path):
    seen = []
    for _ in range(3):
        atomic_write(tmp_path / "f.npy", lambda tmp: (seen.append(tmp.name), tmp.write_bytes(b"x")))
    assert len(set(seen)) == 3 and all(n.startswith(".f.npy.") and n.endswith(".tmp")
                                       for n in seen)
    assert os.listdir(tmp_path) == ["f.npy"]
