"""Standard Webhooks secrets and signatures (through the `standardwebhooks` library)."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime, timedelta

from standardwebhooks import Webhook

from core.schema import SigningSecret, as_utc, utcnow

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh 256-bit secret in the Standard Webhooks form: whsec_ + base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def rotate(holder: SigningSecret, grace_s: float) -> str:
    """Replace the secret; the old one keeps signing (a second signature) for `grace_s` seconds."""
    holder.previous_secret = holder.secret
    holder.previous_expires_at = utcnow() + timedelta(seconds=grace_s)
    holder.secret = new_secret()
    return holder.secret


def active_secrets(holder: SigningSecret, now: datetime) -> list[str]:
    found = [holder.secret]
    if holder.previous_secret and holder.previous_expires_at and as_utc(holder.previous_expires_at) > now:
        found.append(holder.previous_secret)
    return found


def signature_header(secrets_: list[str], msg_id: str, timestamp: datetime, body: str) -> str:
    """`webhook-signature`: one `v1,<base64>` per active secret, space separated (rotation)."""
    return " ".join(Webhook(secret).sign(msg_id, timestamp, body) for secret in secrets_)
