"""Bearer tokens: random, shown once, stored as SHA-256."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from functools import wraps

from flask import current_app, g, request
from sqlalchemy import select

from . import hotcache
from .errors import ApiError
from .extensions import db
from .models import ApiToken


@dataclass(frozen=True)
class Principal:
    role: str  # admin | kiosk | expert
    name: str
    token_id: int | None = None
    kiosk_id: int | None = None
    expert_id: int | None = None

    @property
    def actor(self) -> str:
        return f"{self.role}:{self.token_id or self.name}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def issue_token(role: str, name: str = "", kiosk_id=None, expert_id=None) -> str:
    """Create a token row (caller commits) and return the clear token, once."""
    token = new_token({"admin": "adm", "kiosk": "ksk", "expert": "exp"}[role])
    db.session.add(
        ApiToken(
            token_hash=hash_token(token),
            role=role,
            name=name,
            kiosk_id=kiosk_id,
            expert_id=expert_id,
        )
    )
    return token


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def principal_for(token: str | None) -> Principal | None:
    if not token:
        return None
    admin = current_app.config.get("ADMIN_TOKEN")
    if admin and hmac.compare_digest(token.encode(), admin.encode()):
        return Principal(role="admin", name="env")
    # Cached per process for HOT_CACHE_SECONDS (a kiosk sends thousands of ballots with
    # one token); a revocation reaches every process within that time (hotcache.py).
    # Only kiosk tokens: the others are not on a hot path.
    digest = hash_token(token)
    cached = hotcache.cache().lookup(("kiosk_token", digest))
    if cached is not None:
        return cached
    principal = _load_principal(digest)
    if principal is not None and principal.role == "kiosk":
        hotcache.cache().put(("kiosk_token", digest), principal)
    return principal


def _load_principal(digest: str) -> Principal | None:
    tokens = ApiToken.__table__.c
    row = db.session.execute(
        select(tokens.id, tokens.role, tokens.name, tokens.kiosk_id, tokens.expert_id).where(
            tokens.token_hash == digest, tokens.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        return None
    return Principal(
        role=row.role,
        name=row.name,
        token_id=row.id,
        kiosk_id=row.kiosk_id,
        expert_id=row.expert_id,
    )


def current_principal() -> Principal | None:
    if "principal" not in g:
        g.principal = principal_for(bearer_token())
    return g.principal


def is_admin() -> bool:
    """An admin token came with the request (it may read drafts through the API)."""
    principal = current_principal()
    return principal is not None and principal.role == "admin"


def require(*roles: str):
    """Refuse with 401 (no/unknown token) or 403 (a token of another role)."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            principal = current_principal()
            if principal is None:
                raise ApiError(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"})
            if principal.role not in roles:
                raise ApiError(403, "forbidden")
            return view(*args, **kwargs)

        return wrapper

    return decorator
