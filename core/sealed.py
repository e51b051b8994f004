"""Secrets at rest (webhook signing secrets), encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under a key from
the environment: OMNIMEDIA_SECRET_KEY, with earlier keys in OMNIMEDIA_SECRET_KEYS_OLD still decrypting
(rotation: make a key with `omnimedia secrets new-key`, put it in SECRET_KEY and the old one in SECRET_KEYS_OLD,
run `omnimedia secrets rotate` to re-encrypt every row, then drop the old key). The embedded default without a
key makes one in data_dir/secret.key (mode 0600) and uses it from then on. Stored values read `fernet:<token>`;
a plaintext value written before encryption existed is still read, and `rotate` encrypts it."""

from __future__ import annotations

import hashlib
import hmac
import os
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from core.config import Settings, get_settings

PREFIX = "fernet:"


class SecretKeyMissing(RuntimeError):
    def __init__(self) -> None:
        super().__init__(
            "OMNIMEDIA_SECRET_KEY is not set: secrets at rest need a key shared by the API and the workers "
            "(make one with `omnimedia secrets new-key`)"
        )


def new_key() -> str:
    return Fernet.generate_key().decode()


def _current_key(settings: Settings) -> str:
    if settings.secret_key:
        return settings.secret_key
    path = settings.data_dir / "secret.key"
    if not path.exists():
        if settings.mode != "embedded":  # the API and every worker must share one key: it is not made here
            raise SecretKeyMissing()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process of this install made it first
            return path.read_text().strip()
        with os.fdopen(fd, "w") as out:
            out.write(new_key())
    return path.read_text().strip()


def signing_key(purpose: str, settings: Settings | None = None) -> bytes:
    """A key for signing `purpose`'s tokens (review links), derived from the secret key: never the key itself."""
    key = _current_key(settings or get_settings())
    return hmac.new(key.encode(), purpose.encode(), hashlib.sha256).digest()


@lru_cache(maxsize=8)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def fernet(settings: Settings | None = None) -> MultiFernet:
    settings = settings or get_settings()
    return _fernet((_current_key(settings), *settings.secret_keys_old))


def seal(value: str, settings: Settings | None = None) -> str:
    return PREFIX + fernet(settings).encrypt(value.encode()).decode()


def unseal(stored: str, settings: Settings | None = None) -> str:
    if not stored.startswith(PREFIX):
        return stored  # written before secrets were encrypted
    try:
        return fernet(settings).decrypt(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken as exc:
        raise RuntimeError("a stored secret does not decrypt with OMNIMEDIA_SECRET_KEY or SECRET_KEYS_OLD") from exc


def reseal(stored: str, settings: Settings | None = None) -> str:
    """The value encrypted under the current key (rotation)."""
    return seal(unseal(stored, settings), settings)


class SealedString(TypeDecorator[str]):
    """A string column stored encrypted; Python code sees the plaintext."""

    impl = String(512)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else seal(str(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else unseal(str(value))
