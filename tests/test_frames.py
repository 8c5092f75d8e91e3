"""benchmarks/frames.py runs as docs/benchmarks.md shows, and a worker's write still passes
few of our own frames (one transport adapter, no retry layer around pyairtable's calls)."""

from __future__ import annotations

import re

import pytest

from benchmarks import frames


def test_a_client_run_write_passes_seven_of_our_frames(capsys: pytest.CaptureFixture[str]) -> None:
    assert frames.main() == 0
    out = capsys.readouterr().out
    count = int(re.search(r"^client_run_write_frames=(\d+)$", out, re.M).group(1))  # type: ignore[union-attr]
    assert count == 7, out
    assert "adapter.send <- repository._upsert_by_key" in out
    assert "recovery" not in out  # no retry layer above pyairtable
