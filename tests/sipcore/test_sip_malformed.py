"""Malformed INVITEs must not eat capacity (issue 9.1).

The stack answered some malformed INVITEs (no From tag, no Contact…) with ``500 Call Error`` by itself and
never freed the native call it allocated: each kept a call slot, sockets and RTP ports until the engine's
cap answered every real call 486. Freeing those calls afterwards aborts the process (heap corruption in
the library), so the engine's request guard answers them 400 before the stack sees them.

The malformed set (tests/support/malformed.py, the RFC 4475 invalid INVITEs) is sent for real, over UDP and
TCP, to an engine in a child process — once without the guard (the fault, reproduced) and once with it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from sipcore.sipheaders import initial_invite_problem
from tests.support.malformed import LEAKING
from tests.support.sip_peers import free_port

pytestmark = [pytest.mark.sip]
ROOT = Path(__file__).resolve().parents[2]


async def run_child(workdir: Path, *flags: str) -> tuple[dict[str, Any], int | None]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.malformed_engine", str(free_port()), str(free_port(200)), str(workdir),
        *flags, cwd=str(ROOT), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    lines = [ln for ln in out.decode().splitlines() if ln.startswith("RESULT ")]
    assert lines, f"child gave no result (rc {proc.returncode}): {err.decode(errors='replace')[-3000:]}"
    return json.loads(lines[0][7:]), proc.returncode


async def test_without_the_guard_malformed_invites_leak_native_calls(workdir: Path) -> None:
    res, _rc = await run_child(workdir, "--no-guard")
    print(res)
    assert all(status.startswith("SIP/2.0 500") for status in res["statuses"].values()), res["statuses"]
    assert min(res["leaked_per_pass"]) >= len(LEAKING), res  # every pass leaks one call per kind
    assert res["left_after_pass"][-1] > 0, res  # and nothing frees them


async def test_malformed_invites_get_400_and_leave_no_native_call(workdir: Path) -> None:
    res, rc = await run_child(workdir)
    print(res)
    assert all(status.startswith("SIP/2.0 400 Bad Request - ") for status in res["statuses"].values()), res
    assert set(res["statuses"]) == set(LEAKING)
    # native call slots free after every full pass (UDP ×3, then TCP): the stack holds exactly our calls
    assert res["leaked_per_pass"] == [0, 0, 0] and res["left_after_pass"] == [0, 0, 0], res
    assert res["tcp_left"] == 0 and res["fuzz_leaked"] == 0 and res["fuzz_left"] == 0, res
    assert res["stats"]["malformed_rejected"] >= 3 * len(LEAKING), res
    assert res["stats"]["orphans_pending"] == 0, res
    assert res["real_call_rc"] == 0, res  # a real call is answered afterwards
    assert rc == 0  # and the engine stops cleanly (no heap damage)


def test_initial_invite_problem() -> None:
    ok = {"From": "<sip:a@h>;tag=1", "To": "<sip:b@h>", "Contact": "<sip:a@1.2.3.4:5060>", "CSeq": "1 INVITE",
          "Record-Route": None}
    assert initial_invite_problem(ok) is None
    assert initial_invite_problem({**ok, "From": "<sip:a@h>"}) == "Bad Request - From tag missing"
    assert initial_invite_problem({**ok, "From": "<sip:a@h>;tag="}) == "Bad Request - From tag missing"
    assert initial_invite_problem({**ok, "From": None}) == "Bad Request - From tag missing"
    assert initial_invite_problem({**ok, "Contact": None}) == "Bad Request - Contact missing"
    assert initial_invite_problem({**ok, "Contact": "*"}) == "Bad Request - Contact is not a SIP URI"
    assert initial_invite_problem({**ok, "Contact": "sip:a@h"}) is None
    assert initial_invite_problem({**ok, "Record-Route": "<:::>"}) == "Bad Request - Record-Route malformed"
    assert initial_invite_problem({**ok, "Record-Route": "<sip:p.example;lr>"}) is None
    assert initial_invite_problem({**ok, "Contact": "<sip:\x00@h>"}) == "Bad Request - control character in Contact"
    # in-dialog re-INVITEs and other methods pass through untouched
    assert initial_invite_problem({**ok, "From": "<sip:a@h>", "To": "<sip:b@h>;tag=x"}) is None
    assert initial_invite_problem({**ok, "From": "<sip:a@h>", "CSeq": "2 OPTIONS"}) is None
