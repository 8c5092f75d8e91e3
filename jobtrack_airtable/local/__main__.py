"""Command line of the local server.

    python -m jobtrack_airtable.local serve --port 8765 --token TOKEN \\
        --base-id appJobtrackLocal1 [--data base.db] [--tables tables.json] \\
        [--rate-limit 5|off] [--penalty 30] [--faults faults.toml] [--fault 503:0.05@PATCH]

Creates the tables of ``--tables`` (a JSON list of Airtable table models, or the
``{"tables": [...]}`` the meta API returns) in the base, keeping any already persisted in
``--data``, and serves until interrupted (Ctrl-C or SIGTERM).

Its first line on stdout is one JSON object, so a test in any language can start it with
``--port 0`` and connect: ``{"url": …, "baseId": …, "token": …}``.  Without ``--token`` (or
``$JOBTRACK_LOCAL_TOKEN``) a random token is made and is in that line; a token you give is
never printed (the line leaves it out).  ``jobtrack-airtable local serve`` is this with the
tracking tables.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from .faults import FaultInjector, parse_fault_option
from .server import DEFAULT_BASE_ID, LocalAirtable


def _rate(text: str) -> int | None:
    if text.lower() in ("off", "none", "0"):
        return None
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("rate limit must be >= 1 or 'off'")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m jobtrack_airtable.local",
        description="Local Airtable-compatible server for jobtrack-airtable.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve a base until interrupted")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    serve.add_argument("--port", type=int, default=8765, help="port (0 = any free port)")
    serve.add_argument(
        "--token",
        default=os.environ.get("JOBTRACK_LOCAL_TOKEN"),
        help="bearer token clients must send (default: $JOBTRACK_LOCAL_TOKEN, else a random "
        "one, printed in the JSON line)",
    )
    serve.add_argument("--base-id", default=DEFAULT_BASE_ID, help="base ID (app + 14 chars)")
    serve.add_argument("--base-name", help="the base's name in the meta API (default: its ID)")
    serve.add_argument("--data", help="persist to this base file (default: memory only)")
    serve.add_argument("--tables", help="JSON file of table models to create in the base")
    serve.add_argument(
        "--rate-limit", type=_rate, default=5, help="requests/s per base, or 'off' (default 5)"
    )
    serve.add_argument("--penalty", type=float, default=30.0, help="429 penalty seconds")
    serve.add_argument(
        "--iterator-idle", type=float, default=300.0, help="seconds an unused offset lives"
    )
    serve.add_argument("--faults", help="fault rules file (JSON, or TOML by extension)")
    serve.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND[:P][@METHOD]",
        help="random fault, e.g. 503:0.05@PATCH (repeatable)",
    )
    serve.add_argument("--seed", type=int, help="seed of the fault RNG")
    serve.add_argument(
        "--monthly-quota",
        type=int,
        metavar="N",
        help="data requests allowed before every one gets 429 PUBLIC_API_BILLING_LIMIT_EXCEEDED",
    )
    return parser


def _load_tables(path: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the tables file {path!r}: {exc}") from None
    if isinstance(data, dict):
        data = data.get("tables")
    if not isinstance(data, list) or not all(isinstance(t, dict) for t in data):
        raise ValueError(f"the tables file {path!r} must hold a list of table models")
    return data


def main(
    argv: Sequence[str] | None = None, *, tables: Sequence[Mapping[str, Any]] | None = None
) -> int:
    """Run the command line; ``tables`` are created in the base besides ``--tables``."""
    args = build_parser().parse_args(argv)
    try:
        faults = FaultInjector.load(args.faults) if args.faults else FaultInjector()
        if args.seed is not None:
            faults.seed(args.seed)
        for text in args.fault:
            spec = parse_fault_option(text)
            faults.add(spec.pop("kind"), **spec)
        models = [*(tables or []), *(_load_tables(args.tables) if args.tables else [])]
        srv = LocalAirtable(
            tables=models,
            token=args.token,
            base_id=args.base_id,
            base_name=args.base_name,
            data_path=args.data,
            rate_limit=args.rate_limit,
            penalty_seconds=args.penalty,
            iterator_idle_seconds=args.iterator_idle,
            faults=faults,
            monthly_quota=args.monthly_quota,
            host=args.host,
            port=args.port,
        )
        srv.start()
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    def _terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    names = ", ".join(t.name for t in srv.store.tables(srv.base_id)) or "none"
    persistence = args.data or "memory only"
    limit = f"{args.rate_limit}/s" if args.rate_limit else "off"
    started = {"url": srv.url, "baseId": srv.base_id}
    if not args.token:  # made here: the caller learns it from this line only
        started["token"] = srv.token
    print(json.dumps(started), flush=True)
    print(
        f"Local Airtable serving base {srv.base_id} at {srv.url} "
        f"(tables: {names}; data: {persistence}; rate limit: {limit})",
        file=sys.stderr,
        flush=True,
    )
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
    print("Local Airtable stopped.", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
