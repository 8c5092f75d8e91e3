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


def test_lone_surrogate_in_a_body_is_refused_and_not_stored(local_airtable) -> None:
    import requests

    url = f"{local_airtable.url}/v0/{local_airtable.base_id}/Client%20Run%20Results"
    resp = requests.post(
        url,
        data=b'{"records": [{"fields": {"Run ID": "250930-141522-\\ud800"}}]}',
        headers={
            "Authorization": f"Bearer {local_airtable.token}",
            "Content-Type": "application/json",
        },
        timeout=10,
    )
    assert resp.status_code == 422
    assert resp.json()["error"]["type"] == "INVALID_REQUEST_BODY"
    _, records = local_airtable.store.snapshot(None, "Client Run Results")
    assert records == []
