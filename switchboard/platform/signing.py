"""Webhook signatures: HMAC-SHA256 over ``f"{timestamp}.{body}"`` with the organization's secret.

Headers on every delivery attempt:
  X-Switchboard-Timestamp: unix seconds of this attempt
  X-Switchboard-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>
The README carries the receiver's verification snippet (tests run that very snippet).
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Switchboard-Signature"
TIMESTAMP_HEADER = "X-Switchboard-Timestamp"
EVENT_HEADER = "X-Switchboard-Event"
EVENT_ID_HEADER = "X-Switchboard-Event-Id"
DELIVERY_HEADER = "X-Switchboard-Delivery"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signature(secret, timestamp, body)}
