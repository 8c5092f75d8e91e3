"""Settings from the environment: validation and secrecy of the token."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from jobtrack_airtable.settings import Settings

FAKE = "patFAKEFAKEFAKE123.0123456789abcdef0123456789abcdef"


def test_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRTABLE_API_KEY", FAKE)
    monkeypatch.setenv("AIRTABLE_BASE_ID", "appAAAAAAAAAAAAAA")
    monkeypatch.setenv("JOBTRACK_RUN_ID_TIMEZONE", "Europe/London")
    monkeypatch.setenv("JOBTRACK_RATE_LIMIT", "2.5")
    s = Settings(_env_file=None)
    assert s.api_key is not None and s.api_key.get_secret_value() == FAKE
    assert s.base_id == "appAAAAAAAAAAAAAA"
    assert s.tz.key == "Europe/London"
    assert s.rate_limit == 2.5
    assert s.has_credentials


def test_token_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(_env_file=None, api_key=FAKE, base_id="appAAAAAAAAAAAAAA")
    for text in (repr(s), str(s), str(s.api_key), repr(s.api_key), s.model_dump_json()):
        assert FAKE not in text


def test_dotenv_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRTABLE_BASE_ID", raising=False)
    env = tmp_path / ".env"
    env.write_text("AIRTABLE_BASE_ID=appBBBBBBBBBBBBBB\nJOBTRACK_TIMEOUT=7\n")
    s = Settings(_env_file=env)
    assert s.base_id == "appBBBBBBBBBBBBBB"
    assert s.timeout == 7


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"base_id": "tblAAAAAAAAAAAAAA"}, "not an Airtable base ID"),
        ({"run_id_timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"endpoint_url": "ftp://x"}, "must start with http"),
        ({"timeout": 0}, "greater than 0"),
        ({"limiter_fallback": "maybe"}, "local"),
    ],
)
def test_invalid_settings_name_the_value(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        Settings(_env_file=None, **kwargs)


def test_no_credentials_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRTABLE_API_KEY", raising=False)
    monkeypatch.delenv("AIRTABLE_BASE_ID", raising=False)
    assert not Settings(_env_file=None).has_credentials
