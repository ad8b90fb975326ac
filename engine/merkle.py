"""RFC 6962 Merkle trees over counted ballots (RFC 9162 §2.1 describes the same tree).

Hashing: leaf ``SHA-256(0x00 ‖ data)``, node ``SHA-256(0x01 ‖ left ‖ right)``, the empty
tree ``SHA-256()``. Shape: ``MTH(D[n])`` splits at the largest power of two ``k < n``.

Leaf data is the UTF-8 bytes of a ballot's receipt code, leaves ordered by those bytes.
The receipt already commits to the ballot's content (``H(canonical ballot ‖ nonce)``)
without revealing it, and the voter holds it, so the voter can rebuild their own leaf.

Big trees are handled in aligned chunks of ``CHUNK`` leaves. In an RFC 6962 tree every
aligned full block of 2^c leaves, and the final partial block, is a node, and the nodes
above them follow the same split rule; so the root and any audit path can be computed
from one chunk's leaves plus the list of chunk roots. Runs store exactly that (receipts
and root per chunk), which makes a proof two small reads instead of rehashing a million
leaves per request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

CHUNK = 1024  # leaves per stored chunk; a power of two (see the module docstring)

_sha256 = hashlib.sha256
# Hashing a leaf or a node starts from a copy of a context that has already taken the
# RFC 6962 prefix byte: no ``prefix + data`` concatenation per hash, and copying an
# OpenSSL context is cheaper than creating one. These two are never updated themselves.
_LEAF = _sha256(b"\x00")
_NODE = _sha256(b"\x01")


def leaf_hash(data: bytes) -> bytes:
    h = _LEAF.copy()
    h.update(data)
    return h.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    h = _NODE.copy()
    h.update(left)
    h.update(right)
    return h.digest()


def leaf_hashes(items: Iterable[bytes]) -> list[bytes]:
    """Leaf hashes of ``items`` (bytes, or any buffer such as a NumPy ``S`` scalar).

    A tight loop over hashlib: well over a million leaves per second.
    """
    fresh = _LEAF.copy
    out: list[bytes] = []
    append = out.append
    for data in items:
        h = fresh()
        h.update(data)
        append(h.digest())
    return out


def _parents(level: Sequence[bytes]) -> list[bytes]:
    """One level up: pairs hashed left to right, an unpaired last node lifted unchanged."""
    fresh = _NODE.copy
    out: list[bytes] = []
    append = out.append
    pairs = iter(level)
    for left, right in zip(pairs, pairs, strict=False):
        h = fresh()
        h.update(left)
        h.update(right)
        append(h.digest())
    if len(level) % 2:
        append(level[-1])
    return out


EMPTY_ROOT = _sha256(b"").digest()


def root(nodes: Sequence[bytes]) -> bytes:
    """Root over already-hashed nodes (leaf hashes, or chunk roots), RFC 6962 shape.

    Pairing left to right and lifting an unpaired last node unchanged builds the same
    tree as the recursive split at the largest power of two (tests check it).
    """
    if not nodes:
        return EMPTY_ROOT
    level = nodes
    while len(level) > 1:
        level = _parents(level)
    return level[0]


def audit_path(nodes: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 6962 ``PATH(m, D[n])`` over already-hashed nodes, leaf-side sibling first."""
    n = len(nodes)
    if not 0 <= index < n:
        raise IndexError(f"leaf index {index} outside a tree of {n}")
    path: list[bytes] = []
    level = nodes
    m = index
    while len(level) > 1:
        sibling = m ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        level = _parents(level)
        m //= 2
    return path


def chunked_audit_path(
    chunk_leaves: Sequence[bytes], chunk_roots: Sequence[bytes], chunk_index: int, offset: int
) -> list[bytes]:
    """Audit path of leaf ``chunk_index * CHUNK + offset`` from its chunk's leaf hashes
    and the roots of all chunks: the path inside the chunk, then the chunk's path."""
    return audit_path(chunk_leaves, offset) + audit_path(chunk_roots, chunk_index)


def verify_inclusion(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], expected_root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does ``path`` prove leaf hash ``leaf`` at ``index`` in ``root``?"""
    if index >= size or index < 0:
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected_root
