"""SWITCHBOARD_PUBLIC_IP: the address the server puts in SDP and Contact while it listens on every
address (the container case: host networking, callers reach one particular address)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.helpers import tone_uac, uac_to
from tests.support.sip_peers import running

pytestmark = [pytest.mark.sip]


async def test_sdp_and_contact_carry_the_public_address(server_factory, workdir: Path) -> None:
    server = server_factory(extra_env={"SWITCHBOARD_SIP_HOST": "0.0.0.0", "SWITCHBOARD_PUBLIC_IP": "127.0.0.1"})
    sf = tone_uac(workdir, "demo", hold_ms=800)
    async with running(uac_to(sf, server.sip_target, "demo", "-trace_msg", "-message_file", "msgs.log"),
                       cwd=workdir, limit=30, name="sipp") as sipp:
        result = await sipp.wait(25)
    assert result.rc == 0, result.stdout[-2000:]
    messages = re.split(r"^-{20,}.*$", (workdir / "msgs.log").read_text(), flags=re.M)
    answers = [m for m in messages if "message received" in m and re.search(r"^SIP/2.0 200", m, re.M | re.I)
               and "CSeq: 1 INVITE" in m]
    assert answers, messages
    answer = answers[0]
    contact = re.search(r"^Contact:\s*<?sip:[^@>]*@?([^:;>]+)", answer, re.M | re.I)
    assert contact and contact.group(1) == "127.0.0.1", answer
    assert re.search(r"^c=IN IP4 127\.0\.0\.1\s*$", answer, re.M), answer
