"""switchboard.calls.events is the only writer of call state: no other product module calls the store's
call-state writes (each must go with its outbox row, in one transaction)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("switchboard", "sipcore", "media", "trunks", "api", "agents", "store")
WRITES = re.compile(r"\b(call_store|calls)\.(transition|add_turn|add_event|create_many|insert_inbound|close_orphans)\(")
ALLOWED = {ROOT / "switchboard" / "calls" / "events.py"}


def test_only_the_events_module_writes_call_state() -> None:
    offenders = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if path in ALLOWED:
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if WRITES.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == [], "\n".join(offenders)
