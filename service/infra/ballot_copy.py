"""Reading counted ballots by PostgreSQL binary ``COPY … TO STDOUT`` (psycopg).

The ranking run's fast path (service/domain/rankings.py builds the query and decides
when it applies): ``copy_out`` streams the COPY data on the session's own connection,
``parse_copy`` turns it into NumPy arrays of fixed-width records.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import psycopg
from psycopg import pq

_PGCOPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_PGCOPY_TRAILER = b"\xff\xff"


@contextlib.contextmanager
def copy_out(raw, statement: str) -> Iterator[Iterator[bytes]]:
    """``COPY … TO STDOUT`` on psycopg connection ``raw``, as an iterator of data blocks.

    psycopg's ``cursor.copy()`` reads through a generator and a wait loop per CopyData
    message, and PostgreSQL sends one message per row: three million rows cost about a
    second of client CPU there, which on a small machine the server then lacks. This
    reads with libpq's own blocking ``PQgetCopyData`` instead (psycopg's documented
    ``pq`` layer), on the same connection and so in the same transaction, holding the
    connection's lock. Leaving the block early reads the rest, so the connection is
    idle in its transaction afterwards; a server error is raised as psycopg raises it.
    """
    pgconn = raw.pgconn
    with raw.lock:
        pgconn.send_query(statement.encode("utf-8"))
        started = pgconn.get_result()
        if started is None or started.status != pq.ExecStatus.COPY_OUT:
            while pgconn.get_result() is not None:
                pass
            _raise_pq(started)
        done = False

        def blocks() -> Iterator[bytes]:
            nonlocal done
            read = pgconn.get_copy_data
            while True:
                nbytes, data = read(0)  # 0: block until a row (or the end) arrives
                if nbytes < 0:
                    done = True
                    return
                yield data

        try:
            yield blocks()
        finally:
            while not done and pgconn.get_copy_data(0)[0] >= 0:
                pass
            failed = None
            while (result := pgconn.get_result()) is not None:
                if result.status != pq.ExecStatus.COMMAND_OK:
                    failed = result
        if failed is not None:
            _raise_pq(failed)


def _raise_pq(result) -> None:
    if result is None:
        raise psycopg.OperationalError("COPY: no result from the server")
    message = (result.error_message or b"").decode("utf-8", "replace").strip()
    sqlstate = result.error_field(pq.DiagnosticField.SQLSTATE)
    try:
        error = psycopg.errors.lookup(sqlstate.decode()) if sqlstate else psycopg.DatabaseError
    except KeyError:
        error = psycopg.DatabaseError
    raise error(message or f"COPY failed: {result.status.name}")


def parse_copy(
    blocks: Iterator[bytes], add: Callable[[np.ndarray, np.ndarray], None], batch_rows: int
) -> bool:
    """Binary COPY of ``(receipt text, entry_id int4)`` rows, passed to ``add(receipts,
    entry_ids)`` a batch of at most ``batch_rows`` rows at a time.

    With every receipt the same length (a receipt code always is) each row is a fixed
    record: field count 2, length, receipt bytes, length 4, big-endian int4. Rows are
    viewed ``batch_rows`` at a time as a NumPy structured array over the received bytes, and
    every record's count and lengths are checked: the first row of another length fails
    the check where it starts, and the parse gives up (False) rather than misread.
    """
    buf = bytearray()
    record = None
    while True:
        block = next(blocks, b"")
        if block:
            buf += block
        if record is None:
            if len(buf) < len(_PGCOPY_SIGNATURE) + 8 + 6 and block:
                continue
            if not buf.startswith(_PGCOPY_SIGNATURE):
                return False
            start = len(_PGCOPY_SIGNATURE) + 8 + int.from_bytes(buf[15:19], "big")
            del buf[:start]
            if buf.startswith(_PGCOPY_TRAILER):  # no rows at all
                break
            width = int.from_bytes(buf[2:6], "big", signed=True)
            if width <= 0:
                return False
            record = np.dtype(
                [("n", ">i2"), ("rl", ">i4"), ("r", f"S{width}"), ("el", ">i4"), ("e", ">i4")]
            )
        if len(buf) >= batch_rows * record.itemsize or not block:
            count = len(buf) // record.itemsize
            if count:
                rows = np.frombuffer(buf, dtype=record, count=count)
                if not (
                    (rows["n"] == 2).all()
                    and (rows["rl"] == width).all()
                    and (rows["el"] == 4).all()
                ):
                    return False
                add(rows["r"], rows["e"])
                del rows  # release the view before the buffer shrinks
                del buf[: count * record.itemsize]
        if not block:
            break
    return bytes(buf) == _PGCOPY_TRAILER


_HEADER_FIXED = len(_PGCOPY_SIGNATURE) + 8  # signature, flags, header extension length


def parse_stored(
    blocks: Iterator[bytes],
    add: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], None],
    batch_rows: int,
) -> bool:
    """Binary COPY of ``(receipt text, leaf bytea(32), choice_ids bytea)`` rows, one per
    ballot, passed to ``add(receipts, leaves, counts, entry_ids)`` in batches.

    PostgreSQL sends one CopyData message per row (the file header rides on the first,
    the trailer comes alone), and a row's length fixes its number of choices, so rows
    are grouped by length and each group is viewed as a NumPy structured array. Every
    record's field count and lengths are checked; anything else (a NULL, a receipt of
    another length, a malformed row) makes the parse give up (False) rather than misread.
    Ballots without choices are dropped, as the joined rows have none of them.
    """
    groups: dict[int, bytearray] = {}
    width = 0
    first = True
    ended = False

    def flush(length: int) -> bool:
        buf = groups.pop(length)
        # field count 2 + three length words 12 + leaf 32 = 46 bytes, plus the receipt
        # and 4 bytes per choice
        k, rest = divmod(length - 46 - width, 4)
        if rest or k < 0:
            return False
        # The leaf is V32, not S32: an S scalar drops trailing zero bytes.
        record = np.dtype(
            [
                ("n", ">i2"),
                ("rl", ">i4"),
                ("r", f"S{width}"),
                ("ll", ">i4"),
                ("l", "V32"),
                ("cl", ">i4"),
                ("c", ">i4", (k,)),
            ]
        )
        rows = np.frombuffer(buf, dtype=record)
        if not (
            (rows["n"] == 3).all()
            and (rows["rl"] == width).all()
            and (rows["ll"] == 32).all()
            and (rows["cl"] == 4 * k).all()
        ):
            return False
        if k:
            count = len(rows)
            add(
                rows["r"].copy(),
                rows["l"].copy(),
                np.full(count, k, dtype=np.int64),
                rows["c"].astype(np.int32).reshape(-1),  # entry ids: serial int4
            )
        return True

    for data in blocks:
        if ended:
            return False  # data after the trailer
        length = len(data)
        if first:
            first = False
            head = bytes(data)
            if length < _HEADER_FIXED + 2 or not head.startswith(_PGCOPY_SIGNATURE):
                return False
            head = head[_HEADER_FIXED + int.from_bytes(head[15:19], "big") :]
            if head == _PGCOPY_TRAILER:  # no rows at all
                ended = True
                continue
            if len(head) < 6:
                return False
            width = int.from_bytes(head[2:6], "big", signed=True)
            if width <= 0:
                return False
            data, length = head, len(head)
        elif length == 2 and data == _PGCOPY_TRAILER:
            ended = True
            continue
        buf = groups.get(length)
        if buf is None:
            buf = groups[length] = bytearray()
        buf += data
        if len(buf) >= batch_rows * length and not flush(length):
            return False
    if not ended:
        return False
    return all(flush(length) for length in list(groups))
