"""Choosing the run ID a job start claims, so that K simultaneous starts cost at most
3 requests each, with or without a shared store (issue 21).

A job's run ID is its start second; uniqueness across hosts comes from the claim.  A start
*creates* its row at its second ``c`` carrying a random claim marker, then *reads the block*
of ``c``: every job row whose run ID shares its first :data:`BLOCK_CHARS` characters
(``YYMMDD-HHM``, ten minutes), one request.  What it decides from that one read:

**The seating rule.**  Every claim row of a block has a seat, a function of the block's rows
only: rows are taken in order of their ``createdTime``; a row that is no claim (an old job,
an imported one) holds its run ID; a claim row takes the first second from its ``c`` on that
no older row holds (older: a strictly earlier ``createdTime``).  A claim whose walk leaves the
block has no seat.  The winner of ``c`` has seat ``c`` and is done (2 requests); a loser
moves its row to its seat by one patch, noting ``claim moved from c to s by rank``, and is
done too (3 requests): it does not read again.  A clock jumped back over a busy minute walks
past every taken second at once: 3 requests.

**Why no two rows get one seat without a second read.**  Airtable stamps ``createdTime``
when a row is created, so a row older than ours was created before our read and is in it
(the claim has always relied on this).  Our seat depends only on rows older than ours, with
the values they were created with (``c`` survives a move in the move note), so anyone who
reads the block later computes the very seat we took, and the seat of every row before it.
Of two rows, the younger sees the older and walks past its seat; two rows with one seat
would need one of them to have skipped the other.  Our own later move does not change what
anyone computes, so nobody needs to see it.

**Ties.**  Two rows stamped in the same millisecond are not ordered: each walks past what
strictly older rows hold, ignoring the other (the one that read first may not have seen the
other).  Of two such rows at least one saw the other (whichever read last).  So every row
stamped like another claim has a second seat, its *tie seat*: the walk that also skips
:func:`tie_skip` free seconds (1 to :data:`TIE_SPREAD`, from its own marker), and later
readers hold both seats of each.  A row that sees no tie takes its seat; one that sees a
tie takes its tie seat, unless that is a seat of a row it ties with.

Of two peers, one that saw no tie takes its seat, the other saw it and takes a tie seat
that is none of its seats; two that both saw a tie each take a tie seat the other does not
have.

**When the rule is not enough, verify.**  A tie seat that is a peer's, a row moved by other
means (below; or by an older version of this library, whose move notes are unmarked) on
our seat, a seat past the block: the seat is not sure.  Then the start moves its row to a
second from its seat on that no row of the block holds or is seated at, writes an unmarked
move note, and reads the block of that second again: it keeps the second only when no other
row holds it and no claim row there is seated at it (4 requests; more while it keeps
losing).  A fast row that read before our move is in our second read, so we see its seat
and leave it; a row that reads after our move and is seated where we are sees us there and
verifies too.  Two verifying rows on one second: the one that reads second sees the first
and moves on.

Assumptions (shared with the claim as it was): ``createdTime`` order agrees with visibility;
nothing but claims creates or deletes job rows of a block while starts are running there
(``sync`` merges only settled duplicates; a claim deletes only spare copies of its own row,
left by a retried create, which the rule ignores).

>>> rows = [_row("rec1", 1, "250930-141522"), _row("rec2", 2, "250930-141522")]
>>> seats(rows, "250930-141")
{'m1': ['250930-141522'], 'm2': ['250930-141523']}
"""

from __future__ import annotations

import re
import uuid
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Any

from ..errors import InvalidRunIdError, LimiterUnavailableError
from ..rows import JobRow
from ..run_ids import BaseRunId
from .runs import CUT_MARKER

__all__ = [
    "BLOCK_CHARS",
    "RESERVATION_TTL",
    "TIE_SPREAD",
    "Decision",
    "ahead_of",
    "block_of",
    "claim_note",
    "decide",
    "moved_note",
    "ranked_note",
    "reserve",
    "seats",
    "tie_skip",
]

#: Characters of a run ID that name its block: ``YYMMDD-HHM``, ten minutes of seconds.
BLOCK_CHARS = 10
#: How long a reservation keeps other processes of the store off a second: longer than a
#: start takes, even through a 429 penalty.
RESERVATION_TTL = 120.0
#: Free seconds a row stamped like another may skip, at most, to its tie seat.
TIE_SPREAD = 8
#: Seconds skipped at most looking for one no other process of the store holds.
MAX_RESERVATION_SKIPS = 600

_CLAIM_RE = re.compile(r"\(claim ([^)\s]+)\)")
_MOVE_RE = re.compile(r"claim moved from ([0-9]{6}-[0-9]{6}) to [0-9]{6}-[0-9]{6}( by rank)?")
_NEVER = datetime.min.replace(tzinfo=UTC)


def claim_note(origin: str, marker: str) -> str:
    """The first note line of a claim row: whose row it is."""
    return f"started on {origin} (claim {marker})"


def ranked_note(lost: str, key: str) -> str:
    """The note of a move to the seat the rule gives (anyone can foresee it)."""
    return f"claim moved from {lost} to {key} by rank"


def moved_note(lost: str, key: str) -> str:
    """The note of a verified move (the rule cannot foresee it: the block is unclean)."""
    return f"claim moved from {lost} to {key}"


def block_of(run_id: str) -> str:
    """The block a run ID belongs to: its first :data:`BLOCK_CHARS` characters."""
    return str(run_id)[:BLOCK_CHARS]


def ahead_of(candidate: BaseRunId, count: int) -> list[str]:
    """The ``count`` run IDs after ``candidate``."""
    keys: list[str] = []
    current = candidate
    for _ in range(count):
        current = current.next_second()
        keys.append(str(current))
    return keys


@dataclass(frozen=True)
class _Seen:
    """A row of a block as the rule reads it."""

    record_id: str
    created: datetime
    at: str  # the run ID it holds now
    marker: str | None  # None: no claim row (an old or imported job): it holds ``at``
    origin: str  # the second the claim row was created at
    unmarked_move: bool  # moved by a verified (unforeseeable) move


def _seen(row: JobRow) -> _Seen:
    notes = row.system_notes or ""
    at = row.run_id or ""
    claim = _CLAIM_RE.search(notes)
    # Cut notes may have lost the claim's lines: such a row is long settled, where it is.
    marker = claim.group(1) if claim and CUT_MARKER not in notes else None
    moves = list(_MOVE_RE.finditer(notes)) if marker else []
    origin = moves[0].group(1) if moves else at
    if marker is not None and not _valid(origin):
        marker = None  # not a claim this library wrote: it holds where it is
    return _Seen(
        record_id=row.record_id,
        created=row.created_time or _NEVER,
        at=at,
        marker=marker,
        origin=origin,
        unmarked_move=any(m.group(2) is None for m in moves),
    )


def _valid(run_id: str) -> bool:
    try:
        BaseRunId(run_id)
    except InvalidRunIdError:
        return False
    return True


def _claimants(rows: Iterable[JobRow]) -> tuple[list[_Seen], list[_Seen]]:
    """The block's rows, one per claim (its oldest copy: a retried create leaves spare
    copies, which the rule ignores), and the spare copies."""
    kept: dict[str, _Seen] = {}
    plain: list[_Seen] = []
    spare: list[_Seen] = []
    for seen in sorted(map(_seen, rows), key=lambda s: (s.created, s.record_id)):
        if seen.marker is None:
            plain.append(seen)
        elif seen.marker in kept:
            spare.append(seen)
        else:
            kept[seen.marker] = seen
    return plain + list(kept.values()), spare


def _walk(start: str, block: str | None, held: set[str], skip: int = 0) -> str | None:
    """The first second from ``start`` on that ``held`` lacks, past ``skip`` such seconds;
    ``None`` past the end of ``block`` (no end when ``block`` is ``None``)."""
    current = BaseRunId(start)
    while True:
        if str(current) not in held:
            if skip == 0:
                return str(current)
            skip -= 1
        current = current.next_second()
        if block is not None and block_of(current) != block:
            return None


def tie_skip(marker: str) -> int:
    """How many free seconds a row stamped like another skips for its tie seat: 1 to
    :data:`TIE_SPREAD`, from its own marker, so that anyone can compute it."""
    return 1 + zlib.crc32(marker.encode()) % TIE_SPREAD


def seats(rows: Iterable[JobRow], block: str) -> dict[str, list[str | None]]:
    """The seats of every claim row created in ``block``: its seat, then, for a row stamped
    like another claim, its tie seat (``None``: the walk left the block)."""
    return _seats(_claimants(rows)[0], block)


def _seats(seen: Sequence[_Seen], block: str) -> dict[str, list[str | None]]:
    held: set[str] = set()
    result: dict[str, list[str | None]] = {}
    relevant = [s for s in seen if block_of(s.origin if s.marker else s.at) == block]
    relevant.sort(key=lambda s: s.created)
    # Claims stamped alike are not ordered: each walks past what strictly older rows hold
    # (and past rows that are no claims, which hold where they are whatever their stamp).
    # Each of them may have seen the others or not: both of its seats are held.
    for _, same in groupby(relevant, key=lambda s: s.created):
        group = list(same)
        held.update(s.at for s in group if s.marker is None)
        claims = [s for s in group if s.marker is not None]
        taken: list[str] = []
        for s in claims:
            assert s.marker is not None
            options = [_walk(s.origin, block, held)]
            if len(claims) > 1:
                options.append(_walk(s.origin, block, held, tie_skip(s.marker)))
            result[s.marker] = options
            taken.extend(seat for seat in options if seat is not None)
        held.update(taken)
    return result


@dataclass(frozen=True)
class Decision:
    """What one read of a block decides for our claim row.

    ``row``: our row (``None``: it is gone, create it again); ``spare``: record IDs of copies
    of our row to delete; ``target``: the run ID our row holds now when ``won``, else the one
    to move it to; ``ranked``: the move goes to our seat (no read after it)."""

    row: JobRow | None
    spare: list[str]
    won: bool
    target: str
    ranked: bool = False


def decide(rows: Sequence[JobRow], marker: str, at: str, *, verifying: bool) -> Decision:
    """Decide from ``rows`` (one read of the block of ``at``, where our row was just put):
    won, move by rank, or move and verify (see the module's rules).  ``verifying``: our row
    was moved here by a verified move, which wins only when nothing else holds or is seated
    at ``at``."""
    block = block_of(at)
    by_id = {r.record_id: r for r in rows}
    seen, spares = _claimants(rows)
    mine = next((s for s in seen if s.marker == marker), None)
    spare = [s.record_id for s in spares if s.marker == marker]
    row = by_id.get(mine.record_id) if mine else None
    seat_of = _seats(seen, block)
    others = [s for s in seen if s.marker != marker]
    held = {s.at for s in others} | {
        seat
        for m, options in seat_of.items()
        if m != marker
        for seat in options
        if seat is not None
    }
    options = seat_of.get(marker, [None]) if mine is not None else [None]
    # A verifying row aims from its seat on, past as many free seconds as rows of its
    # second it saw: the rows still to come take the first free seconds, one each, and
    # aiming at the first would meet the next of them at every try.
    crowd = sum(s.origin == (mine.origin if mine else at) for s in others if s.marker)
    elsewhere = _free(options[0] or at, held | {at}, skip=crowd)
    if mine is None:
        return Decision(None, spare, won=False, target=elsewhere)
    if verifying:
        if at not in held:
            return Decision(row, spare, won=True, target=at)
        return Decision(row, spare, won=False, target=elsewhere)
    # A row stamped like ours may not have seen ours (nor we it, had it read first): it may
    # have taken our seat.  Seeing one, we take our tie seat, unless it is one of theirs.
    peers = [s for s in others if s.created == mine.created and s.marker is not None]
    seat = options[-1]
    theirs = {seat for p in peers for seat in seat_of.get(str(p.marker), [])}
    # A row moved where the rule cannot foresee may hold our seat.
    blocked = any(s.unmarked_move and s.at == seat for s in others)
    if seat is not None and seat not in theirs and not blocked:
        return Decision(row, spare, won=seat == at, target=seat, ranked=seat != at)
    return Decision(row, spare, won=False, target=elsewhere)


def _free(start: str, held: set[str], *, skip: int = 0) -> str:
    """The first second from ``start`` on that nothing in the read holds or is seated at,
    past ``skip`` such seconds."""
    second = _walk(start, None, held, skip)
    assert second is not None  # unbounded: there is always a later second
    return second


def reserve(limiter: Any, base_id: str, candidate: BaseRunId) -> BaseRunId:
    """``candidate``, or the first later second no other process sharing ``limiter``'s store
    has reserved; reserved for this process now.  A limiter without a store (rate limit 0)
    reserves nothing: the claim alone decides."""
    take = getattr(limiter, "try_lock", None)
    if take is None:
        return candidate
    token = uuid.uuid4().hex
    for _ in range(MAX_RESERVATION_SKIPS):
        try:
            if take([f"{base_id}:run-id:{candidate}"], token, RESERVATION_TTL):
                return candidate
        except LimiterUnavailableError:
            # Only a saving: the claim on Airtable decides either way.
            return candidate
        candidate = candidate.next_second()
    return candidate


def _row(record_id: str, millis: int, run_id: str, marker: str | None = None) -> JobRow:
    """A claim row for the examples: created ``millis`` ms into 2025-09-30 14:15:22."""
    created = datetime(2025, 9, 30, 14, 15, 22, tzinfo=UTC) + timedelta(milliseconds=millis)
    mark = marker or f"m{record_id.removeprefix('rec')}"
    notes = claim_note("host", mark)
    return JobRow(record_id=record_id, created_time=created, run_id=run_id, system_notes=notes)
