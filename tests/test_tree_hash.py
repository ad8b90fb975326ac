"""The ranking run's faster pieces give exactly what the plain ones give: the receipt
sort, the chunk roots hashed on two processes, the chunk text built as a byte matrix."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import merkle
from service.domain import rankings
from service.infra import tree_hash

RECEIPT_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567-"


def receipts_like(n: int, seed: int, width: int = 19) -> np.ndarray:
    rng = np.random.default_rng(seed)
    alphabet = np.frombuffer(RECEIPT_ALPHABET, dtype=np.uint8)
    grid = alphabet[rng.integers(0, len(alphabet), size=(n, width))]
    return np.frombuffer(grid.tobytes(), dtype=f"S{width}")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=24), max_size=200))
def test_argsort_bytes_orders_like_numpy(items):
    values = np.array(items, dtype="S24" if items else "S1")
    order = rankings.argsort_bytes(values)
    assert sorted(order.tolist()) == list(range(len(values)))
    assert values[order].tolist() == sorted(values.tolist())


@pytest.mark.parametrize("shared", [0, 7, 8, 12])
def test_argsort_bytes_with_shared_prefixes(shared):
    """Many items with the same first bytes: the tie runs (or the fallback) sort them."""
    values = receipts_like(5000, seed=shared)
    if shared:
        grid = values.view(np.uint8).reshape(len(values), 19).copy()
        grid[: len(values) // 2, :shared] = ord("Q")
        values = np.frombuffer(grid.tobytes(), dtype="S19")
    order = rankings.argsort_bytes(values)
    assert values[order].tolist() == sorted(values.tolist())


def leaf_array(receipts: np.ndarray) -> np.ndarray:
    return np.frombuffer(b"".join(merkle.leaf_hashes(receipts.tolist())), dtype="V32")


@pytest.mark.parametrize("n", [1, 1023, 1024, 1025, 5 * 1024 + 3])
def test_chunk_roots_on_two_processes_equal_the_plain_roots(n):
    leaves = leaf_array(receipts_like(n, seed=n))
    plain = [merkle.root(leaves[i : i + merkle.CHUNK].tolist()) for i in range(0, n, merkle.CHUNK)]
    forked = tree_hash.chunk_roots(leaves, merkle.CHUNK, min_chunks=2, fork_ok=lambda: True)
    assert forked == plain
    # the whole tree's root over the chunk roots is the root over every leaf
    assert merkle.root(forked) == merkle.root(leaves.tolist())


def test_a_failing_child_leaves_the_roots_to_the_parent(monkeypatch):
    """The child dies (here: its hashing raises); the parent hashes its half itself."""
    parent = os.getpid()
    real = tree_hash._roots

    def roots_failing_in_the_child(*args):
        if os.getpid() != parent:
            raise RuntimeError("the child fails")
        return real(*args)

    monkeypatch.setattr(tree_hash, "_roots", roots_failing_in_the_child)
    leaves = leaf_array(receipts_like(4 * merkle.CHUNK, seed=4))
    roots = tree_hash.chunk_roots(leaves, merkle.CHUNK, min_chunks=2, fork_ok=lambda: True)
    assert roots == [real(leaves, i, i + 1, merkle.CHUNK)[0] for i in range(4)]


def test_no_fork_with_other_threads_running():
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not tree_hash.can_fork()
    finally:
        stop.set()
        thread.join()


@pytest.mark.parametrize(
    "items",
    [
        [b"ABCD-EFGH-IJKL-MNOP", b"QRST-UVWX-YZ23-4567"],
        [b"ABCD-EFGH", b"QRST-UVWX-YZ23-4567", b"X"],  # shorter ones are NUL-padded
        ["投票-收据".encode(), b"ABCD-EFGH-IJ"],
    ],
)
def test_chunk_text_is_the_receipts_one_per_line(items):
    block = np.array(items)
    assert rankings._chunk_text(block) == b"\n".join(items).decode("utf-8")
