"""A corrupt or wrongly shaped data file is one clear error naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobtrack_airtable.local.storage import Store


@pytest.mark.parametrize("content", ['{"bases": 3}', "[]", "{", '{"bases": {"appX": {}}}'])
def test_bad_data_file_is_a_clear_value_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "base.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match="cannot load local Airtable data") as info:
        Store(path)
    assert str(path) in str(info.value)
