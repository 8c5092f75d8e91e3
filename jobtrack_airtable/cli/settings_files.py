"""Where the CLI finds its settings file, and what is wrong with one.

An admin puts ``AIRTABLE_API_KEY``/``AIRTABLE_BASE_ID`` in one of three places; the first
that exists is used (the environment still wins over any file, variable by variable):

1. ``--env-file FILE`` (must exist: a typo is an error, not the demo base);
2. ``.env`` in the current directory, then in each parent up to the root of the git
   repository it is in (outside a repository, only the current directory: a stray ``/.env``
   must not configure a cron job run from ``/``);
3. the per-user file ``<user config dir>/jobtrack-airtable/config.env``
   (``~/.config/jobtrack-airtable/config.env`` on Linux).

The CLI names the file it used on every run.
"""

from __future__ import annotations

import difflib
import io
from pathlib import Path

import platformdirs
from dotenv import dotenv_values

from ..errors import ConfigError, InvalidInputError
from ..files import read_bounded
from ..settings import Settings

__all__ = ["MAX_SETTINGS_BYTES", "find_settings_file", "known_variables", "unknown_variables"]

APP_NAME = "jobtrack-airtable"
#: A settings file is a few lines; anything larger is the wrong file.
MAX_SETTINGS_BYTES = 1024 * 1024
#: Prefixes of the variables this tool reads (others in a shared ``.env`` are not ours).
_OURS = ("JOBTRACK_", "AIRTABLE_")


def user_settings_path() -> Path:
    """The per-user settings file (it may not exist)."""
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.env"


def _repository_root(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return directory
    return None


def find_settings_file(explicit: Path | None = None, *, cwd: Path | None = None) -> Path | None:
    """The settings file to read (see the module docstring), or ``None``.

    >>> import tempfile, pathlib
    >>> repo = pathlib.Path(tempfile.mkdtemp()); (repo / ".git").mkdir()
    >>> _ = (repo / ".env").write_text("AIRTABLE_BASE_ID=appAAAAAAAAAAAAAA\\n")
    >>> (repo / "deploy" / "cron").mkdir(parents=True)
    >>> find_settings_file(cwd=repo / "deploy" / "cron") == repo / ".env"
    True
    """
    if explicit is not None:
        _check_readable(explicit, option=" (--env-file)")
        return explicit
    here = (cwd or Path.cwd()).absolute()
    root = _repository_root(here)
    directories = [here]
    if root is not None:
        directories += here.parents[: len(here.parents) - len(root.parents)]
    for candidate in [*(d / ".env" for d in directories), user_settings_path()]:
        # A directory named .env is a virtualenv (python -m venv .env), not settings.
        if candidate.exists() and not candidate.is_dir():
            # Checked before pydantic reads it: a FIFO or a 3 GB file named .env must be one
            # clear error, not a hang.
            _check_readable(candidate)
            return candidate
    return None


def _check_readable(path: Path, *, option: str = "") -> None:
    try:
        read_bounded(path, what="settings file", max_bytes=MAX_SETTINGS_BYTES)
    except InvalidInputError as exc:
        raise ConfigError(f"{exc}{option}") from None


def known_variables() -> list[str]:
    """Every variable name :class:`~jobtrack_airtable.settings.Settings` reads."""
    names: list[str] = []
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None) or []
        names.extend(c for c in choices if isinstance(c, str) and c.isupper())
    return names


def unknown_variables(path: Path) -> list[str]:
    """One warning per ``JOBTRACK_*``/``AIRTABLE_*`` name in ``path`` that is not a setting,
    with the closest real name (a misspelt variable is otherwise silently ignored)."""
    try:
        text = read_bounded(path, what="settings file", max_bytes=MAX_SETTINGS_BYTES)
    except InvalidInputError as exc:
        raise ConfigError(str(exc)) from None
    values = dotenv_values(stream=io.StringIO(text.decode("utf-8", errors="replace")))
    known = known_variables()
    warnings = []
    for name in values:
        if name.upper().startswith(_OURS) and name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            warnings.append(f"{name} in {path} is not a setting and is ignored{hint}")
    return warnings
