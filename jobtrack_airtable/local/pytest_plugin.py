"""pytest plugin: a running local Airtable server per test, for anyone testing pyairtable code.

Installed with the package (entry point ``pytest11``), so the fixture is there in any project
that has ``jobtrack-airtable`` installed; nothing to import or configure.

``local_airtable_server`` yields a started :class:`~jobtrack_airtable.local.LocalAirtable`
(stopped after the test): ``.api()`` / ``.table(name)`` give pyairtable objects bound to it,
``.request_log`` counts every request (exact budgets for assertions), ``.faults`` injects
429s, 5xx, delays, dropped connections and lost responses.  Options of the server come from
the ``local_airtable`` marker::

    TABLES = [{"name": "Leads", "fields": [{"name": "Email", "type": "email"}]}]

    @pytest.mark.local_airtable(tables=TABLES, rate_limit=5)
    def test_worker(local_airtable_server):
        table = local_airtable_server.table("Leads")
        ...

By default: no tables (create them with the marker's ``tables`` or through the meta API),
no rate limit, memory only, a random token.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from ..errors import MissingExtraError
from ..extras import require

if TYPE_CHECKING:
    from .server import LocalAirtable

MARKER = "local_airtable"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**options): options of the local_airtable_server fixture's LocalAirtable "
        "(tables=[table models], rate_limit=5, base_id=..., data_path=...)",
    )


@pytest.fixture
def local_airtable_server(request: pytest.FixtureRequest) -> Iterator[LocalAirtable]:
    """A running local Airtable-compatible server (see the module docs)."""
    try:
        require("local", "the local_airtable_server fixture")
    except MissingExtraError as exc:
        pytest.fail(str(exc), pytrace=False)
    # Only when used: the plugin loads in every pytest run of a core install (no werkzeug).
    from .server import LocalAirtable

    options: dict[str, Any] = {"rate_limit": None}
    for marker in reversed(list(request.node.iter_markers(MARKER))):
        if marker.args:
            raise TypeError(f"@pytest.mark.{MARKER} takes keyword options only")
        options.update(marker.kwargs)
    with LocalAirtable(**options) as server:
        yield server
