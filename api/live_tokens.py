"""Session tokens for the live-transcript socket: HMAC-signed ``{call, org, exp}``, valid 5 minutes, checked
on any worker sharing the server secret (``SWITCHBOARD_SECRET_KEY``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

TOKEN_TTL_SECONDS = 300


class TokenSigner:
    def __init__(self, server_secret: str) -> None:
        self._key = hashlib.sha256(("switchboard/live-token/" + server_secret).encode()).digest()

    def issue(self, call_id: uuid.UUID, org_id: uuid.UUID, ttl: int = TOKEN_TTL_SECONDS) -> tuple[str, int]:
        expires = int(time.time()) + ttl
        claims = base64.urlsafe_b64encode(json.dumps({"c": str(call_id), "o": str(org_id), "e": expires},
                                                     separators=(",", ":")).encode()).decode().rstrip("=")
        mac = base64.urlsafe_b64encode(hmac.new(self._key, claims.encode(), hashlib.sha256).digest()).decode()
        return f"{claims}.{mac.rstrip('=')}", expires

    def check(self, token: str) -> tuple[uuid.UUID, uuid.UUID] | None:
        """(call id, org id) of a valid, unexpired token; None otherwise."""
        claims, _, mac = token.partition(".")
        want = base64.urlsafe_b64encode(hmac.new(self._key, claims.encode(), hashlib.sha256).digest()).decode()
        if not mac or not hmac.compare_digest(want.rstrip("="), mac):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
            if int(data["e"]) < time.time():
                return None
            return uuid.UUID(data["c"]), uuid.UUID(data["o"])
        except (ValueError, KeyError, TypeError):
            return None
