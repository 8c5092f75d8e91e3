"""Fault injection for the local server: the failures the client library must survive.

Kinds (``FAULT_KINDS``): ``"403"`` (``INVALID_PERMISSIONS``: a permission removed),
``"429"`` (the exact rate-limit body), ``"quota"`` (the 429 of a spent monthly quota,
``PUBLIC_API_BILLING_LIMIT_EXCEEDED``), ``"500"``, ``"502"``, ``"503"``
(with ``Retry-After``), ``"delay"`` (added latency, then normal processing), ``"drop"`` (the
connection is closed before the request is processed) and ``"lost_response"`` (the request is
applied and persisted, then the connection is closed before the response — the case that
makes naive retries duplicate rows).

Rules match by method and by a substring of the request path (raw, as sent, or decoded), and
fire either by ``probability`` (seedable RNG) or as a script: the next ``times`` matching
requests (after skipping ``after``), or an explicit ``sequence`` where each matching request
takes the next entry (``None``/``"ok"`` = no fault).  Every fired fault is counted.

>>> faults = FaultInjector(seed=1)
>>> _ = faults.add("503", method="PATCH", times=2, retry_after=0.5)
>>> [r.kind if (r := faults.pick("PATCH", "/v0/app/T")) else None for _ in range(3)]
['503', '503', None]
>>> faults.counts
{'503': 2}
"""

from __future__ import annotations

import json
import random
import threading
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAULT_KINDS = frozenset(
    {"403", "429", "quota", "500", "502", "503", "delay", "drop", "lost_response"}
)
_NO_FAULT = (None, "ok", "none", "")


@dataclass
class FaultRule:
    """One fault rule; see :meth:`FaultInjector.add` and :meth:`FaultInjector.script`."""

    kind: str | None
    method: str | None = None
    path: str | None = None
    probability: float | None = None
    times: int | None = None
    after: int = 0
    delay: float = 0.0
    retry_after: float | None = 1.0
    sequence: list[str | None] | None = None
    #: Matching requests seen / faults fired by this rule.
    seen: int = 0
    fired: int = 0

    def matches(self, method: str, path: str, decoded_path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path is None or self.path in path or self.path in decoded_path

    @property
    def exhausted(self) -> bool:
        if self.sequence is not None:
            return self.seen >= self.after + len(self.sequence)
        return self.times is not None and self.fired >= self.times


@dataclass(frozen=True)
class FiredFault:
    """A fault that fired: what it was and for which request (read back by tests)."""

    kind: str
    method: str
    path: str
    delay: float = 0.0
    retry_after: float | None = None


@dataclass
class _Counts:
    by_kind: dict[str, int] = field(default_factory=dict)
    history: list[FiredFault] = field(default_factory=list)


class FaultInjector:
    """Thread-safe set of fault rules with a seedable RNG and counters.

    >>> faults = FaultInjector(seed=7)
    >>> _ = faults.script(["500", None, "lost_response"], path="Client%20Run%20Results")
    >>> path = "/v0/a/Client%20Run%20Results"
    >>> [getattr(faults.pick("PATCH", path), "kind", None) for _ in range(4)]
    ['500', None, 'lost_response', None]
    """

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._rules: list[FaultRule] = []
        self._counts = _Counts()

    # -- configuration ----------------------------------------------------------------------

    def add(
        self,
        kind: str,
        *,
        method: str | None = None,
        path: str | None = None,
        probability: float | None = None,
        times: int | None = None,
        after: int = 0,
        delay: float = 0.5,
        retry_after: float | None = 1.0,
    ) -> FaultRule:
        """Add a rule.  Without ``probability`` it is scripted and fires on the next ``times``
        matching requests (default 1) after skipping ``after``; with ``probability`` each
        matching request fires with that chance (``times`` then caps the total, default
        unlimited).  ``delay`` is the added latency of ``"delay"`` faults, ``retry_after`` the
        ``Retry-After`` seconds of ``"503"`` (``None`` = no header)."""
        _check_kind(kind)
        if probability is not None and not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be within [0, 1], got {probability!r}")
        if probability is None and times is None:
            times = 1
        rule = FaultRule(
            kind,
            method=method,
            path=path,
            probability=probability,
            times=times,
            after=after,
            delay=delay,
            retry_after=retry_after,
        )
        return self._append(rule)

    def script(
        self,
        sequence: Sequence[str | None],
        *,
        method: str | None = None,
        path: str | None = None,
        delay: float = 0.5,
        retry_after: float | None = 1.0,
    ) -> FaultRule:
        """Add a scripted sequence: the n-th matching request gets ``sequence[n]``
        (``None`` or ``"ok"`` = served normally); afterwards the rule is spent."""
        seq = [None if k in _NO_FAULT else k for k in sequence]
        for k in seq:
            if k is not None:
                _check_kind(k)
        rule = FaultRule(
            None,
            method=method,
            path=path,
            sequence=seq,
            delay=delay,
            retry_after=retry_after,
        )
        return self._append(rule)

    def _append(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule (the counters of faults fired are kept)."""
        with self._lock:
            self._rules.clear()

    def seed(self, seed: int | None) -> None:
        """Re-seed the RNG (reproducible random faults)."""
        with self._lock:
            self._rng.seed(seed)

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    # -- reading back -----------------------------------------------------------------------

    @property
    def counts(self) -> dict[str, int]:
        """Faults fired so far, by kind (only kinds that fired appear)."""
        with self._lock:
            return dict(self._counts.by_kind)

    @property
    def history(self) -> list[FiredFault]:
        """Every fault fired, in order."""
        with self._lock:
            return list(self._counts.history)

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.by_kind.values())

    # -- use by the server ------------------------------------------------------------------

    def pick(self, method: str, path: str, decoded_path: str | None = None) -> FiredFault | None:
        """The fault for this request, if any (counted as fired)."""
        decoded = decoded_path if decoded_path is not None else path
        with self._lock:
            for rule in self._rules:
                if rule.exhausted or not rule.matches(method, path, decoded):
                    continue
                rule.seen += 1
                kind = self._decide(rule)
                if kind is None:
                    continue
                rule.fired += 1
                fired = FiredFault(
                    kind,
                    method,
                    path,
                    delay=rule.delay if kind == "delay" else 0.0,
                    retry_after=rule.retry_after if kind == "503" else None,
                )
                self._counts.by_kind[kind] = self._counts.by_kind.get(kind, 0) + 1
                self._counts.history.append(fired)
                return fired
            return None

    def _decide(self, rule: FaultRule) -> str | None:
        if rule.seen <= rule.after:
            return None
        if rule.sequence is not None:
            return rule.sequence[rule.seen - rule.after - 1]
        if rule.probability is not None and self._rng.random() >= rule.probability:
            return None
        return rule.kind

    # -- configuration files ----------------------------------------------------------------

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> FaultInjector:
        """Build from a mapping: ``{"seed": 1, "faults": [{"kind": "503", "probability":
        0.1, "method": "PATCH"}, {"sequence": ["500", "ok", "lost_response"]}]}``."""
        if not isinstance(data, Mapping):
            raise ValueError("fault configuration must be a mapping")
        unknown = set(data) - {"seed", "faults"}
        if unknown:
            raise ValueError(f"unknown fault configuration keys: {sorted(unknown)}")
        injector = cls(seed=data.get("seed"))
        for i, entry in enumerate(data.get("faults", [])):
            if not isinstance(entry, Mapping):
                raise ValueError(f"faults[{i}] must be a mapping")
            entry = dict(entry)
            try:
                if "sequence" in entry:
                    injector.script(entry.pop("sequence"), **entry)
                else:
                    injector.add(entry.pop("kind"), **entry)
            except (KeyError, TypeError) as exc:
                raise ValueError(f"faults[{i}] is invalid: {exc}") from None
        return injector

    @classmethod
    def load(cls, path: str | Path) -> FaultInjector:
        """Load a JSON or TOML fault file (TOML when the name ends in ``.toml``)."""
        p = Path(path)
        text = p.read_text(encoding="utf-8")
        data = tomllib.loads(text) if p.suffix.lower() == ".toml" else json.loads(text)
        return cls.from_config(data)


def parse_fault_option(text: str) -> dict[str, Any]:
    """Parse the ``serve --fault`` shorthand ``KIND[:PROBABILITY][@METHOD]``.

    >>> parse_fault_option("503:0.05@PATCH")
    {'kind': '503', 'probability': 0.05, 'method': 'PATCH'}
    """
    spec, _, method = text.partition("@")
    kind, _, prob = spec.partition(":")
    _check_kind(kind)
    out: dict[str, Any] = {"kind": kind}
    out["probability"] = float(prob) if prob else 1.0
    if method:
        out["method"] = method
    return out


def _check_kind(kind: str) -> None:
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; known: {sorted(FAULT_KINDS)}")
