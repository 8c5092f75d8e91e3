"""docs/mirror.md's examples run as written: its Python against the local server, and its SQL
with ``sqlite3`` against the mirror file that Python made."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from jobtrack_airtable.admin.mirror import default_mirror_path
from tests.helpers import CRR, SyncBase, base_fixture  # noqa: F401
from tests.test_mirror import _seed

DOC = Path(__file__).resolve().parent.parent / "docs" / "mirror.md"


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_python_then_the_sql_examples_run(
    base: SyncBase,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("JOBTRACK_MIRROR_DIR", str(tmp_path))
    _seed(base, clients=20)
    base.add(CRR, {"Run ID": "250930-100000-Client 0", "Client ID": "Client 0"})  # a duplicate
    (python,) = _blocks("python")
    exec(compile(python, "docs/mirror.md", "exec"), {"repo": base.repo})
    printed = capsys.readouterr().out.strip()
    expected = re.search(r"#\s*e\.g\.\s*(.+)$", python, flags=re.M)
    assert expected is not None and printed == expected.group(1).strip()

    path = default_mirror_path(base.srv.base_id, base.conn.endpoint_url)
    assert path.parent == tmp_path
    queries = _blocks("sql")
    assert len(queries) == 3
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        results = [db.execute(q).fetchall() for q in queries]
    statuses, duplicates, refreshes = results
    assert dict(statuses) == {"Running": 13, "Completed": 7, None: 1}
    assert duplicates == [("client_runs", "250930-100000-Client 0", 2)]
    assert [r[1] for r in refreshes] == ["full"]
