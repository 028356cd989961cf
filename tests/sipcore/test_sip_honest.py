"""Honest SIP behaviour (issue 9.8): a CANCEL racing our answer, a peer's REFER, what our answers reveal."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from sipcore import AccountConfig, CallStatus, DialFailed, HangupBy, IncomingCall
from sipcore.baresip_engine import BaresipEngine
from tests.sipcore.test_sip_inbound import sipp_to
from tests.sipcore.test_sip_outbound import uas
from tests.support.sip_peers import HOST, UdpClient, running, scenario, udp_client

pytestmark = [pytest.mark.sip, pytest.mark.asyncio(loop_scope="session")]


async def test_cancel_racing_the_answer_is_a_cancellation(engine: BaresipEngine, workdir: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """The caller CANCELs while the application is still deciding; its answer() comes too late."""
    caplog.set_level(logging.INFO, logger="sipcore")
    calls: asyncio.Queue[IncomingCall] = asyncio.Queue()
    answered_late = asyncio.Event()

    async def slow_answer(incoming: IncomingCall) -> None:
        calls.put_nowait(incoming)
        await asyncio.sleep(0.6)  # routing, a database row… meanwhile the CANCEL arrives
        await incoming.call.answer()
        answered_late.set()

    engine.set_incoming_handler(slow_answer)
    sf = scenario("uac_cancel.xml", workdir, HOLD_MS="50")
    async with running(sipp_to(engine, sf, "-s", "+15553334444", "-m", "1"), cwd=workdir, limit=20,
                       name="sipp") as sipp:
        incoming = await asyncio.wait_for(calls.get(), 10)
        end = await asyncio.wait_for(incoming.call.wait_ended(), 10)
        result = await sipp.wait(10)
    assert result.rc == 0, result.stdout[-2000:]
    assert (end.status, end.cause, end.hangup_by) == (CallStatus.CANCELED, "ORIGINATOR_CANCEL", HangupBy.REMOTE), end
    await asyncio.sleep(0.8)  # the handler's late answer() has run by now
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("sipcore")]
    assert not errors, [r.getMessage() for r in errors]
    assert any("canceled" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)


def av_invite(port: int, lport: int, n: int) -> bytes:
    sdp = (f"v=0\r\no=- 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
           "m=audio 22000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
           "m=video 22002 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n")
    return (f"INVITE sip:+15557770000@{HOST}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{lport};rport;branch=z9hG4bK-av{n}\r\n"
            f"From: <sip:cam@{HOST}:{lport}>;tag=av{n}\r\nTo: <sip:+15557770000@{HOST}:{port}>\r\n"
            f"Call-ID: av{n}-{lport}@{HOST}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
            f"Contact: <sip:cam@{HOST}:{lport}>\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(sdp)}\r\n\r\n{sdp}").encode()


async def next_message(client: UdpClient, start: bytes, limit: float = 5.0) -> bytes:
    while True:
        data = await asyncio.wait_for(client.queue.get(), limit)
        if data.startswith(start):
            return data


def header(message: bytes, name: str) -> str:
    for line in message.decode(errors="replace").split("\r\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return ""


async def test_answers_reveal_no_video_product_or_internal_name(engine: BaresipEngine) -> None:
    """A caller offering audio+video: our 200 OK refuses video (port 0) and names no library, version or
    internal user. The stack then re-INVITEs once to confirm video off (port 0 again): answered here.
    OPTIONS get a bare 200."""
    calls: asyncio.Queue[IncomingCall] = asyncio.Queue()

    async def answer(incoming: IncomingCall) -> None:
        await incoming.call.answer()
        calls.put_nowait(incoming)

    engine.set_incoming_handler(answer)
    _, port = engine.listen_address
    client, lport = await udp_client()
    assert client.transport is not None
    try:
        client.transport.sendto(av_invite(port, lport, 1), (HOST, port))
        ok = await next_message(client, b"SIP/2.0 200")
        body = ok.split(b"\r\n\r\n", 1)[1].decode()
        assert "m=audio " in body and "m=audio 0 " not in body
        assert [ln for ln in body.split("\r\n") if ln.startswith("m=video")] == ["m=video 0 RTP/AVP 0"], body
        assert header(ok, "Server") == "Switchboard-test"
        assert b"baresip" not in ok.lower() and b"switchboard@" not in ok.lower(), ok
        to = header(ok, "To")
        client.transport.sendto((
            f"ACK sip:sip@{HOST}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {HOST}:{lport};rport;branch=z9hG4bK-ack1\r\n"
            f"From: <sip:cam@{HOST}:{lport}>;tag=av1\r\nTo: {to}\r\nCall-ID: av1-{lport}@{HOST}\r\n"
            "CSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode(), (HOST, port))
        incoming = await asyncio.wait_for(calls.get(), 5)
        await incoming.call.wait_answered()
        reinv = await next_message(client, b"INVITE ", limit=3)
        sdp = reinv.split(b"\r\n\r\n", 1)[1].decode()
        assert [ln for ln in sdp.split("\r\n") if ln.startswith("m=video")] == ["m=video 0 RTP/AVP 0"], sdp
        assert header(reinv, "User-Agent") == "Switchboard-test" and b"switchboard@" not in reinv.lower()
        answer_sdp = (f"v=0\r\no=- 1 2 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
                      "m=audio 22000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\nm=video 0 RTP/AVP 0\r\n")
        copied = "".join(f"{name}: {header(reinv, name)}\r\n" for name in ("Via", "From", "To", "Call-ID", "CSeq"))
        client.transport.sendto((f"SIP/2.0 200 OK\r\n{copied}Contact: <sip:cam@{HOST}:{lport}>\r\n"
                                 f"Content-Type: application/sdp\r\nContent-Length: {len(answer_sdp)}\r\n\r\n"
                                 f"{answer_sdp}").encode(), (HOST, port))
        await next_message(client, b"ACK ")
        assert incoming.call.end is None
        client.transport.sendto((
            f"BYE sip:sip@{HOST}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {HOST}:{lport};rport;branch=z9hG4bK-bye1\r\n"
            f"From: <sip:cam@{HOST}:{lport}>;tag=av1\r\nTo: {to}\r\nCall-ID: av1-{lport}@{HOST}\r\n"
            "CSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode(), (HOST, port))
        await asyncio.wait_for(incoming.call.wait_ended(), 5)

        client.transport.sendto((
            f"OPTIONS sip:x@{HOST}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {HOST}:{lport};rport;branch=z9hG4bK-op1\r\n"
            f"From: <sip:scan@{HOST}>;tag=op1\r\nTo: <sip:x@{HOST}>\r\nCall-ID: op1-{lport}@{HOST}\r\n"
            "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode(), (HOST, port))
        opt = await next_message(client, b"SIP/2.0 200")
        assert b"m=video" not in opt and b"baresip" not in opt.lower() and b"switchboard@" not in opt.lower(), opt
        assert header(opt, "Server") == "Switchboard-test"
    finally:
        client.transport.close()


async def test_from_domain_is_used_in_from(engine: BaresipEngine, workdir: Path) -> None:
    """A trunk's from_domain goes into the From of its calls; the INVITE still reaches the trunk's host."""
    args, port = uas(workdir, "uas_status.xml", "-trace_msg", STATUS="486", REASON="Busy Here")
    account = await engine.add_account(AccountConfig(user="+15550007531", domain=f"{HOST}:{port}",
                                                     from_domain="pbx.example.com"))
    async with running(args, cwd=workdir, limit=20, name="uas") as peer:
        await asyncio.sleep(0.3)
        call = await engine.dial(f"sip:+15551230000@{HOST}:{port}", account=account, answer_timeout=10)
        with pytest.raises(DialFailed):
            await call.wait_answered()
        assert (await peer.wait(10)).rc == 0
    log = await asyncio.to_thread(lambda: next(workdir.glob("*_messages.log")).read_text())
    invite = log[log.index("INVITE sip:"):]
    invite = invite[: invite.index("\n\n")] if "\n\n" in invite else invite
    from_line = next(ln for ln in invite.splitlines() if ln.lower().startswith("from:"))
    assert "<sip:+15550007531@pbx.example.com>" in from_line, from_line
    assert invite.startswith(f"INVITE sip:+15551230000@{HOST}:{port}"), invite[:120]
