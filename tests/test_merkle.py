"""The Merkle code against a naive transcription of RFC 6962 §2.1, sizes 1..17 and chunked."""

import hashlib

import pytest

from engine import merkle


def _h(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def naive_mth(data: list[bytes]) -> bytes:
    """MTH(D[n]) exactly as RFC 6962 §2.1 writes it."""
    n = len(data)
    if n == 0:
        return _h(b"")
    if n == 1:
        return _h(b"\x00" + data[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return _h(b"\x01" + naive_mth(data[:k]) + naive_mth(data[k:]))


def naive_path(m: int, data: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) exactly as RFC 6962 §2.1.1 writes it."""
    n = len(data)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return naive_path(m, data[:k]) + [naive_mth(data[k:])]
    return naive_path(m - k, data[k:]) + [naive_mth(data[:k])]


def items(n: int) -> list[bytes]:
    return [f"R{i:04d}".encode() for i in range(n)]


def test_empty_tree_root_is_hash_of_nothing():
    """An empty ballot set has the RFC 6962 empty root, SHA-256 of the empty string."""
    assert merkle.root([]) == naive_mth([]) == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("n", range(1, 18))
def test_root_and_every_path_match_rfc6962(n):
    """Root and every audit path equal the RFC's recursive definition, and verify."""
    data = items(n)
    leaves = merkle.leaf_hashes(data)
    root = merkle.root(leaves)
    assert root == naive_mth(data)
    for m in range(n):
        path = merkle.audit_path(leaves, m)
        assert path == naive_path(m, data)
        assert merkle.verify_inclusion(leaves[m], m, n, path, root)
        if path:
            assert not merkle.verify_inclusion(leaves[m], m, n, path[:-1], root)


@pytest.mark.parametrize("n", [1, 3, 4, 5, 8, 9, 16, 17, 31])
def test_chunked_tree_equals_whole_tree(n, monkeypatch):
    """Chunk roots combine to the whole tree's root; chunked paths equal whole-tree paths."""
    monkeypatch.setattr(merkle, "CHUNK", 4)
    data = items(n)
    leaves = merkle.leaf_hashes(data)
    chunks = [leaves[i : i + merkle.CHUNK] for i in range(0, n, merkle.CHUNK)]
    chunk_roots = [merkle.root(c) for c in chunks]
    assert merkle.root(chunk_roots) == naive_mth(data)
    for m in range(n):
        c, off = divmod(m, merkle.CHUNK)
        assert merkle.chunked_audit_path(chunks[c], chunk_roots, c, off) == naive_path(m, data)


def test_a_wrong_leaf_does_not_verify():
    """A receipt that is not in the tree cannot borrow another leaf's proof."""
    data = items(7)
    leaves = merkle.leaf_hashes(data)
    path = merkle.audit_path(leaves, 3)
    assert not merkle.verify_inclusion(merkle.leaf_hash(b"other"), 3, 7, path, merkle.root(leaves))
    with pytest.raises(IndexError):
        merkle.audit_path(leaves, 7)
