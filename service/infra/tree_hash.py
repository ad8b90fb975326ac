"""The roots of a run's Merkle chunks, on two cores where that is safe.

A ranking run over a million ballots hashes about a million tree nodes (engine/merkle.py),
one SHA-256 of 65 bytes each: a second of one core in CPython, and hashlib keeps the GIL
for inputs that small, so threads do not help. The chunks are independent, so the second
half is hashed in a forked child while this process hashes the first; the child writes
its roots (32 bytes each) to a pipe and leaves with ``os._exit``.

Forking is done only where it cannot deadlock or mislead: POSIX, at least two CPUs, and
this process running a single thread (a fork copies only the calling thread, so a lock
held by another thread, in OpenSSL or in logging, would stay held in the child forever).
The ranking job runs in rq's work-horse, a single-threaded forked process. Anything
else, and any failure of the child (a non-zero exit, a short read), hashes the same
chunks here instead: the roots are the same either way, only the time differs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import numpy as np

from engine import merkle

# Below this many chunks (about 64k ballots) a fork costs more than it saves.
PARALLEL_MIN_CHUNKS = 64


def _roots(leaves: np.ndarray, first: int, stop: int, chunk: int) -> list[bytes]:
    return [merkle.root(leaves[i * chunk : (i + 1) * chunk].tolist()) for i in range(first, stop)]


def can_fork() -> bool:
    return hasattr(os, "fork") and (os.cpu_count() or 1) >= 2 and threading.active_count() == 1


def chunk_roots(
    leaves: np.ndarray,
    chunk: int = merkle.CHUNK,
    *,
    min_chunks: int = PARALLEL_MIN_CHUNKS,
    fork_ok: Callable[[], bool] = can_fork,
) -> list[bytes]:
    """Roots of ``leaves`` (leaf hashes, dtype V32, in leaf order) taken ``chunk`` at a
    time: ``[merkle.root(leaves[0:chunk]), merkle.root(leaves[chunk:2*chunk]), …]``."""
    n_chunks = -(-len(leaves) // chunk)
    if n_chunks < max(2, min_chunks) or not fork_ok():
        return _roots(leaves, 0, n_chunks, chunk)
    split = n_chunks // 2
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: hash the second half, write it, leave without cleanup
        code = 1
        try:
            os.close(read_end)
            view = memoryview(b"".join(_roots(leaves, split, n_chunks, chunk)))
            while view:
                view = view[os.write(write_end, view) :]
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        first = _roots(leaves, 0, split, chunk)
        parts = []
        while block := os.read(read_end, 1 << 16):
            parts.append(block)
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
    data = b"".join(parts)
    want = 32 * (n_chunks - split)
    if status != 0 or len(data) != want:
        return first + _roots(leaves, split, n_chunks, chunk)
    return first + [data[i : i + 32] for i in range(0, want, 32)]
