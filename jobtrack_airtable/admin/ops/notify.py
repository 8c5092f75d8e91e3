"""Notification targets for ``check --notify URL``, through apprise.

apprise (``pip install 'jobtrack-airtable[ops]'``) speaks Slack (``slack://…``), email
(``mailto://…``), Microsoft Teams (``workflows://…``), generic JSON webhooks
(``json://host:port/path``, ``jsons://`` for HTTPS) and a hundred other services; see its
documentation for the URL of each.  It is imported only when a target is built, so the rest
of the library works without it.

A notification URL often *is* a secret (a Slack or Teams webhook URL grants posting rights):
a :class:`AppriseTarget` never shows it.  Its :attr:`~AppriseTarget.id` is the scheme plus a
digest of the URL (``json-3f2a9c0d1e4b``), stable across runs so the state file can remember
which target already has which problem, and its ``repr`` shows only that.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from ...errors import ConfigError, MissingExtraError

__all__ = ["AppriseTarget", "MissingExtraError", "build_targets"]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # apprise loads its plugins lazily, and one imports the stdlib's deprecated imghdr: that
    # is apprise's business, not a warning for our users.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _apprise() -> Any:
    try:
        with _quiet():
            import apprise
    except ImportError:
        raise MissingExtraError(
            "notifications need apprise: pip install 'jobtrack-airtable[ops]'"
        ) from None
    return apprise


def _scheme(url: str) -> str:
    head, sep, _ = url.partition("://")
    return head.lower() if sep and head.isalnum() else "?"


class AppriseTarget:
    """One notification URL, validated by apprise when built."""

    def __init__(self, url: str, *, position: int = 1) -> None:
        apprise = _apprise()
        if not isinstance(url, str) or not url.strip():
            raise ConfigError(f"notification URL #{position} is empty")
        url = url.strip()
        scheme = _scheme(url)
        digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]
        self._id = f"{scheme}-{digest}"
        self._warning = apprise.NotifyType.WARNING
        self._apprise = apprise.Apprise()
        self._url = url
        #: Why the last delivery failed, in apprise's words with the URL masked (``None``
        #: after a success): the CLI says it, so a failed notification is never a mystery.
        self.last_error: str | None = None
        # apprise logs failures through the "apprise" logger; a secret-free summary is ours.
        with _quiet():
            added = self._apprise.add(url)
        if not added:
            raise ConfigError(
                f"notification URL #{position} (scheme {scheme!r}) is not one apprise "
                "understands; see apprise's list of services"
            )

    @property
    def id(self) -> str:
        return self._id

    def __repr__(self) -> str:
        return f"AppriseTarget({self._id})"

    def send(self, title: str, body: str) -> bool:
        """Deliver one message; ``False`` (never an exception) when delivery failed, with the
        reason in :attr:`last_error`."""
        reasons = _Reasons()
        logger = logging.getLogger("apprise")
        logger.addHandler(reasons)
        try:
            sent = bool(self._apprise.notify(body=body, title=title, notify_type=self._warning))
        except Exception as exc:
            sent = False
            reasons.messages.append(f"{type(exc).__name__}: {exc}")
        finally:
            logger.removeHandler(reasons)
        reason = reasons.messages[-1] if reasons.messages else "the service refused it"
        self.last_error = None if sent else reason.replace(self._url, self._id)
        return sent


class _Reasons(logging.Handler):
    """Collects what apprise logs while delivering (warnings and errors only)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.messages.append(" ".join(record.getMessage().split()))


def build_targets(urls: Sequence[str]) -> list[AppriseTarget]:
    """Targets for ``urls``, every URL checked before any message is sent."""
    return [AppriseTarget(u, position=i) for i, u in enumerate(urls, start=1)]
