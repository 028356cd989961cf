"""Encryption at rest for stored secrets (trunk passwords, provider keys) and API-key hashing."""

from __future__ import annotations

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet, InvalidToken

API_KEY_PREFIX = "sb_"


class SecretBox:
    """Fernet (AES-128-CBC + HMAC-SHA256) keyed by a hash of the server's secret key."""

    def __init__(self, secret_key: str) -> None:
        if not secret_key:
            raise ValueError("secret key must not be empty")
        digest = hashlib.sha256(("switchboard/secretbox/" + secret_key).encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("stored secret cannot be decrypted with this SWITCHBOARD_SECRET_KEY") from exc


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    # API keys are 256-bit random tokens, so a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(key.encode()).hexdigest()


def mask_secret(value: str) -> str:
    tail = value[-4:] if len(value) >= 8 else ""
    return "****" + tail
