"""Per-model claims: other holders excluded, a killed claimant holds nothing (klom_utils.claims)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from klom_utils.claims import claimed, held_claims

ROOT = Path(__file__).resolve().parents[1]


def test_claims_exclude_other_holders_and_are_released(tmp_path):
    with claimed(tmp_path, "full_models/DIGITS", [0, 1, 2]) as mine:
        assert mine == [0, 1, 2]
        assert held_claims(tmp_path, "full_models/DIGITS") == [0, 1, 2]
        with claimed(tmp_path, "full_models/DIGITS", [1, 2, 3]) as other:
            assert other == [3]  # 1 and 2 are held: not waited for
    assert held_claims(tmp_path, "full_models/DIGITS") == []


def test_a_killed_claimant_leaves_nothing_held(tmp_path):
    code = textwrap.dedent(f"""
        import time
        from klom_utils.claims import claimed
        with claimed({str(tmp_path)!r}, "f", [0, 1]) as mine:
            print("held", mine, flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT)
    assert proc.stdout.readline().strip() == "held [0, 1]"
    assert held_claims(tmp_path, "f") == [0, 1]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with claimed(tmp_path, "f", [0, 1]) as mine:
        assert mine == [0, 1]


def test_claimed_chunks_skip_done_and_held_ids_and_clear_stale_tmp(tmp_path):
    from klom_utils.claims import claimed_chunks

    folder = tmp_path / "f"
    folder.mkdir()
    (folder / ".train_logits_2.pt.abc.tmp").write_text("left by a killed run")
    (folder / ".train_logits_9.pt.abc.tmp").write_text("another model's: kept")
    with claimed(tmp_path, "f", [1]):  # as if another process held model 1
        chunks = list(claimed_chunks(tmp_path, "f", [0, 1, 2, 3, 4], 2, lambda: {3}))
    assert chunks == [([0], 2), ([2], 2), ([4], 1)]
    assert not (folder / ".train_logits_2.pt.abc.tmp").exists()
    assert (folder / ".train_logits_9.pt.abc.tmp").exists()


def test_reading_claims_writes_nothing(tmp_path):
    (tmp_path / "full_models" / "DIGITS").mkdir(parents=True)
    assert held_claims(tmp_path, "full_models/DIGITS") == []
    with claimed(tmp_path, "full_models/DIGITS", []) as mine:
        assert mine == []
    assert sorted(os.listdir(tmp_path)) == ["full_models"]  # no claims folder made
