"""A batch of ballots written by binary ``COPY`` into a staging table, then settled in
one statement (PostgreSQL only; service/domain/ballots.py decides when it applies).

``stage_and_insert`` copies the prepared rows (the columns are the row dict's keys, so a
column ``_prepare`` adds is staged too) with their position and entry ids into a
session-local temporary table, then one statement inserts them into ``ballots`` in input
order, skipping every row that hits a uniqueness conflict (same ballot id, same voter
and slot, same receipt), and inserts the choices of the rows it wrote. It returns the
ids it inserted; the caller settles the rest one by one, as before. Everything runs in
the caller's transaction on the session's own connection: nothing is written unless the
caller commits, and a failure anywhere leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from sqlalchemy import Integer, LargeBinary, String
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, scoped_session

from ..models import Ballot
from ..models._types import UTCDateTime

STAGE = "ballot_stage"

# Columns of the temporary table: the ballot's own columns (types as in ``ballots``,
# without its constraints: LIKE copies NOT NULL only) plus the input position and the
# entry ids. ON COMMIT DELETE ROWS: a staged row never outlives its transaction.
_CREATE = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE} "
    "(LIKE ballots, stage_ord int4 NOT NULL, stage_entry_ids int4[] NOT NULL) "
    "ON COMMIT DELETE ROWS"
)
# One round trip: the table (once per connection) and no rows left by an earlier call
# in the same transaction (without parameters psycopg sends both statements at once).
_PREPARE = f"{_CREATE}; DELETE FROM {STAGE}"


def _copy_type(column) -> str:
    """The binary COPY type of a ``ballots`` column."""
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return "timestamptz"
    if isinstance(kind, Integer):
        return "int4"
    if isinstance(kind, LargeBinary):
        return "bytea"
    if isinstance(kind, String):
        return "text"
    raise TypeError(f"ballots.{column.name}: no COPY type for {kind!r}")


_TYPES: dict[tuple[str, ...], list[str]] = {}
_SETTLE: dict[tuple[str, ...], str] = {}


def _settle_sql(names: tuple[str, ...]) -> str:
    cols = ", ".join(names)
    return (
        f"WITH new AS (INSERT INTO ballots ({cols}) "
        f"SELECT {cols} FROM {STAGE} ORDER BY stage_ord "
        "ON CONFLICT DO NOTHING RETURNING id), "
        "chosen AS (INSERT INTO ballot_choices (ballot_id, entry_id, campaign_id) "
        f"SELECT s.id, e.entry_id, s.campaign_id FROM {STAGE} s JOIN new ON new.id = s.id, "
        "unnest(s.stage_entry_ids) AS e(entry_id) RETURNING 1) "
        "SELECT id FROM new"
    )


def stage_and_insert(
    session: Session | scoped_session, rows: Sequence[dict], entry_ids: Sequence[Sequence[int]]
) -> set[str]:
    """Insert ``rows`` (all with the same keys) and, for each row written, its
    ``ballot_choices`` with ``entry_ids`` (same order as ``rows``); returns the ids of
    the rows written. Rows that conflict with a stored row, or with an earlier row of
    the same call, are skipped."""
    if not rows:
        return set()
    names = tuple(rows[0])
    types = _TYPES.get(names)
    if types is None:
        table = Ballot.__table__
        types = [_copy_type(table.c[name]) for name in names] + ["int4", "int4[]"]
        _TYPES[names] = types
        _SETTLE[names] = _settle_sql(names)
    conn = session.connection()
    conn.exec_driver_sql(_PREPARE)
    raw = conn.connection.driver_connection
    assert raw is not None  # a live connection of the session
    columns = ", ".join((*names, "stage_ord", "stage_entry_ids"))
    statement = f"COPY {STAGE} ({columns}) FROM STDIN (FORMAT BINARY)"
    try:
        with raw.cursor() as cur, cur.copy(statement) as copy:
            copy.set_types(types)
            write = copy.write_row
            for n, (row, ids) in enumerate(zip(rows, entry_ids, strict=True)):
                if tuple(row) != names:
                    raise ValueError("stage_and_insert: rows with other columns")
                write([*row.values(), n, list(ids)])
    except psycopg.Error as exc:
        # As SQLAlchemy reports its own statements' errors (a lost connection is an
        # OperationalError, answered 503), and a dead connection leaves the pool.
        lost = raw.closed or raw.broken
        if lost:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            statement, None, exc, psycopg.Error, connection_invalidated=lost
        ) from exc
    return set(conn.exec_driver_sql(_SETTLE[names]).scalars())
