"""benchmarks/frames.py runs as docs/benchmarks.md shows, and a worker's write still passes
few of our own frames (one transport adapter, no retry layer around pyairtable's calls)."""

from __future__ import annotations

import re

import pytest

from benchmarks import frames


def test_a_client_run_write_passes_few_of_our_frames(capsys: pytest.CaptureFixture[str]) -> None:
    assert frames.main() == 0
    out = capsys.readouterr().out
    match = re.search(r"^client_run_write_frames=(\d+)$", out, re.M)
    assert match is not None, out
    # Issue 20: at most half the 17 frames a write passed when it was filed.
    assert int(match.group(1)) <= 8, out
    # The table layer and the transport: the adapter right under the one upsert, no retry
    # layer (recovery) and no chunking closures in between.
    assert (
        "adapter.send <- repository._upsert_by_key <- repository.write <- repository.write "
        "<- commit._send" in out
    )
    assert "recovery" not in out
