"""The call domain: sessions, the media loop, the dialer, inbound routing, the call-creation rules, the
transport-neutral call leg, and ``events`` — the one writer of call state, which also publishes it.

Public surface: ``OfflineCalls`` / ``Telephony`` (the API's CallControl), ``events`` (write and
subscribe), ``CallLeg``. Everything else is internal to the package.
"""

from __future__ import annotations

from . import events
from .control import OfflineCalls
from .leg import CallLeg

__all__ = ["CallLeg", "OfflineCalls", "events"]
