"""kamailio as a test carrier: the lab configuration rewritten to this test's ports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.sip_peers import HOST, SUPPORT, free_port, running

CARRIER_CFG = SUPPORT / "kamailio-carrier.cfg"  # a copy of shared/lab/kamailio-carrier.cfg
TRUNK_USER, TRUNK_PASSWORD, TRUNK_REALM = "ua", "secret", "siplab"
INBOUND_DID = "+15550001111"  # the cfg routes this DID to the registered "ua" contact


@dataclass
class Carrier:
    port: int
    pstn_port: int  # where E.164 calls are relayed (a sipp UAS)


def carrier_config(workdir: Path, port: int, pstn_port: int) -> Path:
    text = CARRIER_CFG.read_text()
    dispatcher = workdir / "dispatcher.list"
    dispatcher.write_text(f"1 sip:{HOST}:{free_port()}\n")
    text = text.replace('"sip:127.0.0.1:5080"', f'"sip:{HOST}:{pstn_port}"')
    text = text.replace("listen=udp:127.0.0.1:5070", f"listen=udp:{HOST}:{port}")
    text = text.replace('alias="127.0.0.1:5070"', f'alias="{HOST}:{port}"')
    text = text.replace('"DISPATCHER_LIST"', f'"{dispatcher}"')
    cfg = workdir / "kamailio.cfg"
    cfg.write_text(text)
    return cfg


@asynccontextmanager
async def carrier(workdir: Path) -> AsyncIterator[Carrier]:
    port, pstn = free_port(), free_port()
    cfg = carrier_config(workdir, port, pstn)
    args = ["kamailio", "-f", str(cfg), "-DD", "-E", "-Y", str(workdir), "-P", str(workdir / "kamailio.pid"),
            "-m", "64", "-M", "8"]
    async with running(args, cwd=workdir, limit=300, name="kamailio") as proc:
        await asyncio.sleep(0.8)
        assert proc.proc.returncode is None, "kamailio did not start"
        yield Carrier(port, pstn)
