"""API keys: `omk_<id>_<secret>`; only sha256(secret) is stored. A key belongs to one tenant."""

from __future__ import annotations

import hashlib
import re
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.config import Settings
from core.schema import LOCAL_TENANT, ApiKey, new_id, utcnow

TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_TOKEN = re.compile(r"^omk_([0-9a-f]{32})_([A-Za-z0-9_-]{20,100})$")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(session: Session, tenant: str) -> tuple[ApiKey, str]:
    """Create a key; return the row and the plaintext token (shown once, never stored)."""
    if not TENANT_PATTERN.match(tenant):
        raise ValueError("tenant names are 1-63 chars of a-z, 0-9, '-' and '_', starting with a letter or digit")
    if tenant == LOCAL_TENANT:
        raise ValueError(f"tenant {LOCAL_TENANT!r} is reserved for the CLI and anonymous callers of a single machine")
    secret = secrets.token_urlsafe(32)
    key = ApiKey(id=new_id(), tenant=tenant, secret_sha256=_digest(secret), created_at=utcnow())
    session.add(key)
    session.commit()
    return key, f"omk_{key.id}_{secret}"


def revoke_key(session: Session, key_id: str) -> bool:
    result = session.execute(
        update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=utcnow())
    )
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def tenant_for_token(session: Session, token: str) -> str | None:
    """The tenant of a valid, unrevoked key; None otherwise (constant-time comparison of the digest)."""
    match = _TOKEN.match(token.strip())
    if not match:
        return None
    key = session.get(ApiKey, match.group(1))
    if key is None or key.revoked_at is not None:
        return None
    return key.tenant if secrets.compare_digest(key.secret_sha256, _digest(match.group(2))) else None


def any_key_ever(session: Session) -> bool:
    """Whether an API key was ever created here: keys are revoked, never deleted, so their rows are the record."""
    return session.scalar(select(ApiKey.id).limit(1)) is not None


def anonymous_allowed(session: Session, settings: Settings) -> bool:
    """Whether a request without a key acts as the local tenant: as OMNIMEDIA_ALLOW_ANONYMOUS says; unset, only on
    the embedded default and only until the first API key is created (revoking every key does not reopen it)."""
    if settings.allow_anonymous is not None:
        return settings.allow_anonymous
    return settings.mode == "embedded" and not any_key_ever(session)
