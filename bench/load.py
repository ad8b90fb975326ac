"""Fast loading of counted ballots with COPY straight into ``ballots`` and
``ballot_choices`` (valid rows, as ``cast_ballot`` would have written them), plus experts
and their live scores.

Rows: a uuid4 id; a 64-hex voter key (random, so unique); dedup slot ``once``; channel
``web``; ``cast_at`` = ``accepted_at`` spread over the voting window; a 64-hex content
digest; a unique receipt ``XXXX-XXXX-XXXX-XXXX`` (base32 of 6 random bytes and a 4-byte
row counter); a 32-hex nonce; the stored Merkle leaf and entry ids, as ingest writes them. Two to four distinct choices per ballot (three on
average), entries more or less popular. Foreign-key triggers are skipped for the load
(``session_replication_role = replica``): every row is valid by construction.
"""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import numpy as np
import psycopg
from psycopg.types.json import Json

from engine import merkle
from service.domain.ballots import encode_choice_ids

CHUNK = 50_000
N_EXPERTS = 15
_counter = 0  # receipts stay unique across every load of the run


def _choices(rng: np.random.Generator, n: int, n_entries: int) -> tuple[np.ndarray, np.ndarray]:
    """Per ballot 2-4 distinct entry positions (weighted sampling without replacement)."""
    weights = np.linspace(3.0, 0.3, n_entries)  # A01 most popular, A40 least
    keys = rng.random((n, n_entries)) ** (1.0 / weights)
    top = np.argpartition(-keys, 4, axis=1)[:, :4]
    k = rng.integers(2, 5, size=n)  # 2, 3 or 4: three on average
    return top, k


def _chunk(rng, campaign_id, entries, m, start, span, first) -> tuple[str, str, int]:
    """COPY text for ``m`` ballots and their choices."""
    hx = rng.bytes(m * 96).hex()  # 192 hex digits a row: id 32, voter 64, digest 64, nonce 32
    counter = np.arange(first, first + m, dtype=">u4").view(np.uint8).reshape(m, 4)
    random6 = np.frombuffer(rng.bytes(m * 6), dtype=np.uint8).reshape(m, 6)
    receipts = base64.b32encode(np.hstack([random6, counter]).tobytes()).decode()
    times = np.datetime_as_string(
        start + rng.integers(0, span, size=m).astype("timedelta64[s]"), unit="s"
    )
    top, k = _choices(rng, m, len(entries))
    chosen = entries[top].tolist()
    rows, lines = [], []
    for i in range(m):
        h = hx[192 * i : 192 * (i + 1)]
        bid = f"{h[0:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"
        r = receipts[16 * i : 16 * (i + 1)]
        t = times[i] + "Z"
        receipt = f"{r[0:4]}-{r[4:8]}-{r[8:12]}-{r[12:16]}"
        ids = sorted(chosen[i][: k[i]])
        # bytea in COPY text: \\x and hex digits (the backslash doubled for COPY)
        leaf = merkle.leaf_hash(receipt.encode()).hex()
        packed = encode_choice_ids(ids).hex()
        rows.append(
            f"{bid}\t{campaign_id}\t{h[32:96]}\tonce\tweb\t\\N\t{t}\t{t}\t"
            f"{h[96:160]}\t{receipt}\t{h[160:192]}\t\\N\t\\\\x{leaf}\t\\\\x{packed}\n"
        )
        for entry_id in ids:
            lines.append(f"{bid}\t{entry_id}\t{campaign_id}\n")
    return "".join(rows), "".join(lines), len(lines)


def load_ballots(
    conn: psycopg.Connection,
    campaign_id: int,
    entry_ids: list[int],
    n: int,
    opens: datetime,
    closes: datetime,
    seed: int = 0,
) -> dict:
    """COPY ``n`` ballots of ``campaign_id``; returns counts.

    The next chunk's text is built in a thread while the server ingests the current one.
    """
    global _counter
    rng = np.random.default_rng(seed)
    entries = np.asarray(entry_ids)
    span = int((closes - opens).total_seconds()) - 1
    start = np.datetime64(opens.astimezone(UTC).replace(tzinfo=None), "s")
    n_choices = 0
    sizes = [min(CHUNK, n - lo) for lo in range(0, n, CHUNK)]
    firsts = list(np.cumsum([_counter, *sizes[:-1]]))
    _counter += n
    with ThreadPoolExecutor(1) as pool, conn.cursor() as cur:
        cur.execute("SET session_replication_role = replica")
        pending = None
        for index, m in enumerate(sizes):
            if pending is None:
                pending = pool.submit(_chunk, rng, campaign_id, entries, m, start, span, firsts[0])
            ballots, choices, count = pending.result()
            pending = None
            if index + 1 < len(sizes):
                pending = pool.submit(
                    _chunk,
                    rng,
                    campaign_id,
                    entries,
                    sizes[index + 1],
                    start,
                    span,
                    int(firsts[index + 1]),
                )
            with cur.copy(
                "COPY ballots (id, campaign_id, voter_key, dedup_slot, channel, kiosk_id,"
                " cast_at, accepted_at, content_digest, receipt, nonce, flagged, leaf, choice_ids)"
                " FROM STDIN"
            ) as copy:
                copy.write(ballots)
            with cur.copy(
                "COPY ballot_choices (ballot_id, entry_id, campaign_id) FROM STDIN"
            ) as copy:
                copy.write(choices)
            n_choices += count
            del ballots, choices
        cur.execute("SET session_replication_role = DEFAULT")
        cur.execute("UPDATE campaigns SET rules_locked_at = now() WHERE id = %s", (campaign_id,))
    conn.commit()
    return {"ballots": n, "choices": n_choices}


def load_experts(
    conn: psycopg.Connection, campaign_id: int, entry_ids: list[int], seed: int = 0
) -> int:
    """15 experts, each with a live score for every entry (rubric impact/40, novelty/20)."""
    rng = np.random.default_rng(seed + 1)
    scores = []
    with conn.cursor() as cur:
        for e in range(N_EXPERTS):
            cur.execute(
                "INSERT INTO experts (campaign_id, name, area, created_at)"
                " VALUES (%s, %s, %s, now()) RETURNING id",
                (campaign_id, f"专家{e + 1}", f"专家区{e + 1}"),
            )
            expert_id = cur.fetchone()[0]
            for entry_id in entry_ids:
                impact = float(rng.integers(10, 41))
                novelty = float(rng.integers(5, 21))
                total = round(100 * (impact + novelty) / 60, 4)
                doc = Json({"impact": impact, "novelty": novelty})
                scores.append((campaign_id, expert_id, entry_id, doc, total))
        cur.executemany(
            "INSERT INTO scores (campaign_id, expert_id, entry_id, scores, total, revision,"
            " created_at, updated_at) VALUES (%s, %s, %s, %s, %s, 1, now(), now())",
            scores,
        )
    conn.commit()
    return len(scores)


def vacuum_analyze(url: str) -> None:
    """What autovacuum would have done by the time a campaign closes."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE ballots")
        conn.execute("VACUUM ANALYZE ballot_choices")
        conn.execute("VACUUM ANALYZE scores")
