"""/health reports the worker's real-time state: a worker whose event loop wakes late (frames slipping) or
whose shared recogniser is shedding is "degraded" (503, check "realtime" down) — with the real telephony."""

from __future__ import annotations

import asyncio
from pathlib import Path

from switchboard.config import Settings
from switchboard.server import TELEPHONY, init_app
from tests.support.sip_peers import free_port, running, scenario, sipp_args


async def test_health_is_degraded_while_the_worker_cannot_keep_real_time(aiohttp_client, tmp_path: Path, db,
                                                                         database_url: str) -> None:
    rtp = free_port(200)
    settings = Settings(data_dir=tmp_path, database_url=database_url, secret_key="test-secret",
                        sip_host="127.0.0.1", sip_port=free_port(), rtp_port_min=rtp, rtp_port_max=rtp + 199)
    client = await aiohttp_client(init_app(settings, database_url, bootstrap=False, telephony=True))
    body: dict = {}
    for _ in range(300):  # start-up (decoders warming) may have made the loop late for a moment: wait it out
        body = await (await client.get("/api/v1/health")).json()
        if body["data"]["checks"]["realtime"] == "up":
            break
        await asyncio.sleep(0.1)
    assert body["data"]["checks"]["realtime"] == "up", body
    overload = client.app[TELEPHONY].overload
    await overload.stop()  # from here on the test plays the probe
    overload.active_calls = lambda: 5  # calls up: their audio is what admission protects (an idle worker admits)
    for _ in range(50):  # what the probe records when the loop wakes 40 ms late: frames slip
        overload.record_lateness(40.0)
    resp = await client.get("/api/v1/health")
    body = await resp.json()
    assert resp.status == 503 and body["data"]["status"] == "degraded"
    assert body["data"]["checks"]["realtime"] == "down" and body["data"]["checks"]["sip"] == "up"
    assert not overload.admit()  # and new calls are refused meanwhile
    for _ in range(400):  # the loop keeps time again: the window fills with on-time wake-ups
        overload.record_lateness(0.5)
    body = await (await client.get("/api/v1/health")).json()
    assert body["data"]["checks"]["realtime"] == "up"


async def test_a_new_call_is_refused_while_frames_would_slip_and_recorded(aiohttp_client, tmp_path: Path, db,
                                                                          database_url: str) -> None:
    """A real INVITE (sipp) to the demo agent while the worker's loop runs late: refused before it is
    answered, recorded as a failed inbound call with the reason "overloaded"."""
    rtp = free_port(200)
    settings = Settings(data_dir=tmp_path, database_url=database_url, secret_key="test-secret",
                        sip_host="127.0.0.1", sip_port=free_port(), rtp_port_min=rtp, rtp_port_max=rtp + 199)
    client = await aiohttp_client(init_app(settings, database_url, bootstrap=True, telephony=True))
    overload = client.app[TELEPHONY].overload
    overload.admission = True
    overload.active_calls = lambda: 5  # calls up: their audio is what admission protects (an idle worker admits)
    await overload.stop()  # the state this test sets stays as set: no probe samples push it out of the window
    for _ in range(300):  # 2 % of the window's wake-ups 16 ms late: not slipping yet, but no room for more
        overload.record_lateness(16.0 if _ % 50 == 0 else 0.5)
    overload.record_lateness(16.0)
    sf = scenario("uac_expect_reject.xml", tmp_path, STATUS="486", UA="overload-test")
    async with running([*sipp_args(sf, free_port(), free_port(4), "-s", "demo", "-m", "1"),
                        f"127.0.0.1:{settings.sip_port}"], cwd=tmp_path, limit=30, name="sipp") as sipp:
        result = await sipp.wait(25)
    assert result.rc == 0, result.stdout[-1500:] + result.stderr[-1500:]  # rejected (486 on this engine)
    row = await db.fetchrow("SELECT status, disconnection_reason, sip_status FROM calls ORDER BY created_at DESC "
                            "LIMIT 1")
    assert (row["status"], row["disconnection_reason"], row["sip_status"]) == ("failed", "overloaded", 503)
    assert overload.refused == 1 and overload.admitted == 0
