"""Which optional parts are installed: the extras of ``pyproject.toml`` and the modules each
brings.  A missing one is one line naming the extra to install, never a traceback.

>>> require("local", "the local server")  # the test environment has every extra
>>> EXTRAS["cli"]
('typer', 'rich', 'tomlkit', 'werkzeug', 're2', 'sortedcontainers')
"""

from __future__ import annotations

import importlib.util

from .errors import MissingExtraError

__all__ = ["EXTRAS", "require"]

_LOCAL = ("werkzeug", "re2", "sortedcontainers")

#: The top-level modules each extra brings (the CLI runs an embedded local base by default).
EXTRAS: dict[str, tuple[str, ...]] = {
    "local": _LOCAL,
    "cli": ("typer", "rich", "tomlkit", *_LOCAL),
    "ops": ("apprise", "plotly"),
    "redis": ("redis",),
}


def require(extra: str, what: str = "jobtrack-airtable") -> None:
    """Raise :class:`~.errors.MissingExtraError` naming ``extra`` when one of its modules
    cannot be found (looked up, not imported: cheap enough for start-up)."""
    if any(importlib.util.find_spec(name) is None for name in EXTRAS[extra]):
        raise MissingExtraError.of(extra, what)
