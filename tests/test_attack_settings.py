"""Attack: environment values that parse as numbers but mean nothing (``inf``, ``nan``).

``JOBTRACK_FLUSH_INTERVAL=inf`` was accepted: a client-run change would wait forever (the
durability bound "at most one flush interval" gone); ``JOBTRACK_TIMEOUT=inf`` failed deep in
the limiter with "ValueError: lease must be >= 0 seconds, not inf", naming no variable.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from jobtrack_airtable.settings import Settings

from .helpers import clean_env as clean_env  # no stray environment (autouse fixture)
from .helpers import error_lines, local

NUMBERS = ["JOBTRACK_TIMEOUT", "JOBTRACK_RATE_LIMIT", "JOBTRACK_STALE_AFTER_MINUTES"]
NUMBERS.append("JOBTRACK_FLUSH_INTERVAL")


@pytest.mark.parametrize("var", NUMBERS)
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "Infinity"])
def test_non_finite_numbers_are_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None)
    assert var in str(caught.value)


@pytest.mark.parametrize("var", ["JOBTRACK_TIMEOUT", "JOBTRACK_FLUSH_INTERVAL"])
def test_the_cli_names_a_non_finite_value_in_one_line(
    base: Path, monkeypatch: pytest.MonkeyPatch, var: str
) -> None:
    monkeypatch.setenv(var, "inf")
    result = local(base, "runs", "list")
    assert result.exit_code == 1, result.output
    [line] = error_lines(result)
    assert line.startswith(f"error: invalid configuration: {var}='inf'"), line


@pytest.mark.parametrize("url", ["http://[::1", "http://localhost:99999", "http://host:port"])
def test_a_malformed_endpoint_url_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("JOBTRACK_ENDPOINT_URL", url)
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None)
    assert "JOBTRACK_ENDPOINT_URL" in str(caught.value) and url in str(caught.value)
