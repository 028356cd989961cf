"""Inbound calls from real sipp / baresip peers into the engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from sipcore import CallStatus, DtmfReceived, HangupBy, IncomingCall, RefusedCall
from sipcore.baresip_engine import BaresipEngine
from sipcore.engine import EngineConfig
from sipcore.protection import RateLimiter
from tests.support.sip_peers import (
    HOST,
    baresip_peer_dir,
    dominant_freq,
    free_port,
    make_tone_wav_pcm,
    make_tone_wav_ulaw,
    read_wav,
    running,
    scenario,
    sipp_args,
    spawn,
    tone,
)

pytestmark = [pytest.mark.sip, pytest.mark.asyncio(loop_scope="session")]


def tone_call(workdir: Path, *, to_user: str = "+15551112222", ua: str = "sipp-test", hold_ms: int = 3000) -> Path:
    wav = make_tone_wav_ulaw(workdir / "tone1k.wav", 1000, hold_ms / 1000 + 1)
    media = f'<exec rtp_stream="{wav.name},-1,0"/>'
    return scenario("uac_tone.xml", workdir, TO_USER=to_user, UA=ua, HOLD_MS=str(hold_ms), MEDIA=media)


def reject_call(workdir: Path, status: int = 486, ua: str = "sipp-test") -> Path:
    return scenario("uac_expect_reject.xml", workdir, STATUS=str(status), UA=ua)


def sipp_to(engine: BaresipEngine, sf: Path | str, *extra: str) -> list[str]:
    host, port = engine.listen_address
    return [*sipp_args(sf, free_port(), free_port(4), *extra), f"{host}:{port}"]


class Answerer:
    """An incoming handler that answers every call and remembers it."""

    def __init__(self) -> None:
        self.calls: asyncio.Queue[IncomingCall] = asyncio.Queue()

    async def __call__(self, incoming: IncomingCall) -> None:
        await incoming.call.answer()
        self.calls.put_nowait(incoming)


async def collect_pcm(incoming: IncomingCall, seconds: float) -> np.ndarray:
    call = incoming.call
    await call.wait_answered()
    parts = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end and call.end is None:
        parts.append(call.read_pcm())
        await asyncio.sleep(0.02)
    return np.concatenate(parts) if parts else np.zeros(0, np.int16)


async def test_sipp_tone_reaches_engine_and_caller_fields(engine: BaresipEngine, workdir: Path) -> None:
    answerer = Answerer()
    engine.set_incoming_handler(answerer)
    args = sipp_to(engine, tone_call(workdir, hold_ms=3000), "-s", "+15551112222", "-m", "1")
    async with running(args, cwd=workdir, limit=20, name="sipp") as sipp:
        incoming = await asyncio.wait_for(answerer.calls.get(), 10)
        pcm = await collect_pcm(incoming, 2.5)
        end = await asyncio.wait_for(incoming.call.wait_ended(), 10)
        result = await sipp.wait(10)
    assert result.rc == 0, result.stderr
    call = incoming.call
    assert call.sample_rate in (0, 8000)
    assert len(pcm) > 8000
    assert abs(dominant_freq(pcm[-8000:], 8000) - 1000) < 20
    assert incoming.request_user == "+15551112222"
    assert incoming.to_user == "+15551112222"
    assert incoming.from_user == "+15550009999"
    assert incoming.from_display == "Alice Caller"
    assert incoming.source_host == HOST and incoming.source_port == int(args[args.index("-p") + 1])
    assert incoming.user_agent == "sipp-test"
    assert incoming.sip_call_id and call.sip_call_id == incoming.sip_call_id
    assert end.status is CallStatus.COMPLETED and end.cause == "NORMAL_CLEARING"
    assert end.hangup_by is HangupBy.REMOTE and end.answered
    # gotcha: reading after the end (AudioRestarted / AudioNotActive) never raises
    assert call.read_pcm().size == 0
    assert call.write_pcm(tone(440, 160)) == 0
    assert call.rtp_stats().rx_packets > 100


def _engine_audio_threads() -> dict[str, int]:
    """This process's per-call native audio threads (baresip's transmit thread, the audio source and player
    of the binding's PCM slot) → their timer slack in ns."""
    import os

    out: dict[str, int] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as fh:
                comm = fh.read().strip()
            if comm.startswith(("Audio TX", "aumem")):
                with open(f"/proc/{tid}/timerslack_ns") as fh:
                    out[f"{comm}/{tid}"] = int(fh.read())
        except OSError:  # a thread that ended meanwhile
            continue
    return out


async def test_a_calls_audio_threads_batch_their_wakeups(engine: BaresipEngine, engine_config: EngineConfig,
                                                        workdir: Path) -> None:
    """The engine's per-call transmit thread polls every 4 ms: it and the call's other audio threads run with the
    configured timer slack (set on the SIP thread, inherited by the threads the stack starts), not the kernel's
    50 µs default."""
    assert engine_config.timer_slack_us == 4000
    answerer = Answerer()
    engine.set_incoming_handler(answerer)
    args = sipp_to(engine, tone_call(workdir, hold_ms=3000), "-s", "+15551112222", "-m", "1")
    async with running(args, cwd=workdir, limit=20, name="sipp") as sipp:
        incoming = await asyncio.wait_for(answerer.calls.get(), 10)
        await collect_pcm(incoming, 0.5)  # media is flowing: the call's audio threads run
        threads = _engine_audio_threads()
        await asyncio.wait_for(incoming.call.wait_ended(), 10)
        assert (await sipp.wait(10)).rc == 0
    assert any(name.startswith("Audio TX") for name in threads), threads
    assert any(name.startswith("aumem") for name in threads), threads
    assert set(threads.values()) == {engine_config.timer_slack_us * 1000}, threads


async def test_audio_both_ways_with_baresip_peer(engine: BaresipEngine, workdir: Path) -> None:
    """baresip dials in playing 1 kHz; we play 440 Hz; its recording holds our tone."""
    answerer = Answerer()
    engine.set_incoming_handler(answerer)
    src = make_tone_wav_pcm(workdir / "src.wav", 1000, 12)
    port = free_port(42)
    conf = baresip_peer_dir(workdir, port=port, source_wav=src)
    host, sip_port = engine.listen_address
    args = ["baresip", "-f", str(conf), "-e", f"/dial sip:+15553334444@{host}:{sip_port}", "-t", "10"]
    async with running(args, cwd=workdir, limit=20, name="baresip"):
        incoming = await asyncio.wait_for(answerer.calls.get(), 10)
        call = incoming.call
        await call.wait_answered()
        frame = tone(440, 160)
        heard = []
        loop = asyncio.get_running_loop()
        stop = loop.time() + 3.0
        while loop.time() < stop:
            if call.tx_buffered < 800:  # keep ~100 ms queued
                call.write_pcm(frame)
            heard.append(call.read_pcm())
            await asyncio.sleep(0.02)
        call.flush_tx()
        await call.hangup()
        end = await asyncio.wait_for(call.wait_ended(), 10)
        await asyncio.sleep(1.0)  # let baresip close its dump files
    pcm = np.concatenate(heard)
    assert abs(dominant_freq(pcm[-8000:], 8000) - 1000) < 20
    dumps = sorted((workdir / "dump").glob("dump-*-dec.wav"))
    assert dumps, "baresip wrote no recording"
    rec, rate = read_wav(dumps[-1])
    assert len(rec) > rate
    assert abs(dominant_freq(rec[rate // 2 : rate * 2], rate) - 440) < 20
    assert end.status is CallStatus.COMPLETED and end.hangup_by is HangupBy.LOCAL
    assert incoming.request_user == "+15553334444"


def _bursts(pcm: np.ndarray, rate: int) -> list[np.ndarray]:
    """The stretches of a recording that carry sound (5 ms windows above a quiet floor)."""
    win = rate // 200
    n = len(pcm) // win
    loud = np.sqrt(np.mean(pcm[: n * win].astype(np.float64).reshape(n, win) ** 2, axis=1)) > 500
    edges = np.flatnonzero(np.diff(np.concatenate([[0], loud.astype(np.int8), [0]])))
    return [pcm[a * win : b * win] for a, b in zip(edges[::2], edges[1::2], strict=True)]


async def test_audio_written_right_after_a_flush_reaches_the_peer(engine: BaresipEngine, workdir: Path) -> None:
    """What the media loop does when a reply starts (drop any padding, hand over the first frames at once) and
    at a barge-in followed by new audio: the engine flushes on its transmit thread's next tick, so audio written
    right after the request was discarded with what it was meant to drop (a reply lost its first 60 ms). Now the
    new audio reaches the peer whole: at once when nothing was queued, after the flush has been applied when
    something was."""
    answerer = Answerer()
    engine.set_incoming_handler(answerer)
    src = make_tone_wav_pcm(workdir / "src.wav", 1000, 12)
    conf = baresip_peer_dir(workdir, port=free_port(42), source_wav=src)
    host, sip_port = engine.listen_address
    args = ["baresip", "-f", str(conf), "-e", f"/dial sip:+15553334444@{host}:{sip_port}", "-t", "10"]

    async def send(pcm: np.ndarray) -> None:  # like the tick: hand over what the engine takes, the rest next time
        while len(pcm):
            pcm = pcm[call.write_pcm(pcm) :]
            if len(pcm):
                await asyncio.sleep(0.02)

    async with running(args, cwd=workdir, limit=20, name="baresip"):
        incoming = await asyncio.wait_for(answerer.calls.get(), 10)
        call = incoming.call
        await call.wait_answered()
        await asyncio.sleep(0.6)  # the agent silent: nothing queued (send waits for the media, if need be)
        call.flush_tx()  # a reply starts: drop padding (there is none), then its first 60 ms at once
        await send(tone(440, 480))
        await asyncio.sleep(0.6)
        assert call.write_pcm(tone(440, 800)) == 800  # 100 ms queued, then a barge-in and new audio at once
        call.flush_tx()
        await send(tone(660, 480))
        await asyncio.sleep(0.6)
        await call.hangup()
        await asyncio.wait_for(call.wait_ended(), 10)
        await asyncio.sleep(1.0)  # let baresip close its dump files
    (dump,) = sorted((workdir / "dump").glob("dump-*-dec.wav"))
    rec, rate = read_wav(dump)
    bursts = _bursts(rec, rate)
    assert len(bursts) >= 2, f"the peer heard {len(bursts)} bursts"
    reply, after_barge_in = bursts[0], bursts[-1]
    assert abs(len(reply) - rate * 60 // 1000) <= rate * 10 // 1000, f"reply start: {len(reply) * 1000 // rate} ms"
    assert abs(dominant_freq(reply, rate) - 440) < 30
    tail = after_barge_in[-rate * 50 // 1000 :]  # at most one frame of the flushed audio went out before it
    assert len(after_barge_in) >= rate * 55 // 1000 and abs(dominant_freq(tail, rate) - 660) < 30


async def test_stock_sipp_uac_is_not_broken_by_reinvite(engine: BaresipEngine, workdir: Path) -> None:
    """Gotcha: a plain answer() re-INVITEs ~150 ms after the ACK and the stock
    sipp uac scenario aborts on it; answer() uses video=True so it passes."""
    answerer = Answerer()
    engine.set_incoming_handler(answerer)
    args = sipp_to(engine, "uac", "-s", "anyuser", "-m", "1", "-d", "1500")
    async with running(args, cwd=workdir, limit=20, name="sipp") as sipp:
        result = await sipp.wait(15)
    assert result.rc == 0, result.stdout[-2000:]
    incoming = answerer.calls.get_nowait()
    end = await asyncio.wait_for(incoming.call.wait_ended(), 5)
    assert end.status is CallStatus.COMPLETED
    # gotcha: catchall=yes — any Request-URI user reaches our handler
    assert incoming.request_user == "anyuser"


async def test_remote_cancel_is_classified(engine: BaresipEngine, workdir: Path) -> None:
    seen: asyncio.Queue[IncomingCall] = asyncio.Queue()

    async def ring_only(incoming: IncomingCall) -> None:
        seen.put_nowait(incoming)
        await incoming.call.wait_ended()

    engine.set_incoming_handler(ring_only)
    sf = scenario("uac_cancel.xml", workdir, HOLD_MS="500")
    async with running(sipp_to(engine, sf, "-s", "+15550001000", "-m", "1"), cwd=workdir, limit=20, name="sipp") as sipp:
        result = await sipp.wait(15)
    assert result.rc == 0, result.stderr
    end = await asyncio.wait_for((await seen.get()).call.wait_ended(), 5)
    assert end.status is CallStatus.CANCELED and end.cause == "ORIGINATOR_CANCEL"
    assert end.hangup_by is HangupBy.REMOTE and not end.answered


async def test_reject_keeps_desired_status(engine: BaresipEngine, workdir: Path) -> None:
    """Limitation: only 486 goes on the wire; the desired 404 is recorded."""
    seen: asyncio.Queue[IncomingCall] = asyncio.Queue()

    async def unknown_number(incoming: IncomingCall) -> None:
        seen.put_nowait(incoming)
        await incoming.call.reject(404)

    engine.set_incoming_handler(unknown_number)
    async with running(sipp_to(engine, reject_call(workdir, 486), "-s", "+15550000404", "-m", "1"), cwd=workdir, limit=20, name="sipp") as sipp:
        result = await sipp.wait(15)
    assert result.rc == 0, result.stderr
    call = (await seen.get()).call
    end = await asyncio.wait_for(call.wait_ended(), 5)
    assert call.desired_reject_status == 404
    assert (end.status, end.cause, end.sip_status) == (CallStatus.FAILED, "UNALLOCATED_NUMBER", 404)
    assert end.hangup_by is HangupBy.LOCAL


async def test_call_cap_above_library_default_and_enforced(engine: BaresipEngine, workdir: Path) -> None:
    """Gotcha: the library's default cap is 2. Three concurrent calls are all
    answered; then with max_calls=1 a second INVITE is refused and reported."""
    answerer = Answerer()
    engine.set_incoming_handler(answerer)
    args = sipp_to(engine, tone_call(workdir, hold_ms=1500), "-s", "+15551110000", "-m", "3", "-l", "3", "-r", "20")
    async with running(args, cwd=workdir, limit=20, name="sipp") as sipp:
        result = await sipp.wait(15)
    assert result.rc == 0, result.stdout[-1500:]
    assert answerer.calls.qsize() == 3

    answerer = Answerer()
    engine.set_incoming_handler(answerer)
    refused: list[RefusedCall] = []
    engine.on_refused(refused.append)
    engine.max_calls = 1
    async with running(sipp_to(engine, tone_call(workdir, hold_ms=2500), "-s", "+15551110001", "-m", "1"), cwd=workdir, limit=20, name="sipp") as first:
        await asyncio.wait_for(answerer.calls.get(), 5)
        second = await spawn(sipp_to(engine, reject_call(workdir, 486), "-s", "+15551110002", "-m", "1"), cwd=workdir, limit=15, name="sipp2")
        r2 = await second.wait(15)
        r1 = await first.wait(15)
    assert r2.rc == 0 and r1.rc == 0
    assert [(r.reason, r.desired_status, r.sent_status) for r in refused] == [("over_capacity", 503, 486)]
    assert refused[0].incoming.to_user == "+15551110002"


async def test_drain_refuses_new_and_keeps_live_calls(engine: BaresipEngine, workdir: Path) -> None:
    answerer = Answerer()
    engine.set_incoming_handler(answerer)
    refused: list[RefusedCall] = []
    engine.on_refused(refused.append)
    async with running(sipp_to(engine, tone_call(workdir, hold_ms=4000), "-s", "+15552220000", "-m", "1"), cwd=workdir, limit=20, name="sipp") as live:
        incoming = await asyncio.wait_for(answerer.calls.get(), 5)
        await incoming.call.wait_answered()
        await engine.drain()
        assert engine.draining
        late = await spawn(sipp_to(engine, reject_call(workdir, 486), "-s", "+15552220001", "-m", "1"), cwd=workdir, limit=15, name="late")
        assert (await late.wait(15)).rc == 0
        from sipcore import DialRefused

        with pytest.raises(DialRefused) as info:
            await engine.dial(f"sip:x@{HOST}:9")
        assert info.value.reason == "draining"
        pcm = await collect_pcm(incoming, 1.0)  # the live call still carries audio
        assert engine.active_call_count == 1
        assert (await live.wait(15)).rc == 0
    assert pcm.size > 4000 and abs(dominant_freq(pcm, 8000) - 1000) < 20
    assert [r.reason for r in refused] == ["draining"]
    assert (await incoming.call.wait_ended()).status is CallStatus.COMPLETED
    assert await engine.wait_idle(5)


async def test_scanner_and_rate_limit_are_refused(engine: BaresipEngine, workdir: Path) -> None:
    handled: list[IncomingCall] = []

    async def handler(incoming: IncomingCall) -> None:
        handled.append(incoming)
        await incoming.call.reject(486)

    engine.set_incoming_handler(handler)
    refused: list[RefusedCall] = []
    engine.on_refused(refused.append)
    sf = reject_call(workdir, 486, ua="friendly-scanner")
    async with running(sipp_to(engine, sf, "-s", "100", "-m", "1"), cwd=workdir, limit=15, name="scan") as scan:
        assert (await scan.wait(15)).rc == 0
    assert handled == [] and refused == []  # scanners are dropped, not reported

    saved = engine._limiter
    engine._limiter = RateLimiter(rate=0.01, burst=2)
    try:
        args = sipp_to(engine, reject_call(workdir, 486), "-s", "200", "-m", "3", "-r", "10")
        async with running(args, cwd=workdir, limit=15, name="flood") as flood:
            assert (await flood.wait(15)).rc == 0
    finally:
        engine._limiter = saved
    assert len(handled) == 2
    assert [r.reason for r in refused] == ["rate_limited"]


async def test_dtmf_in_from_sipp_rfc4733(engine: BaresipEngine, workdir: Path) -> None:
    """sipp plays RFC 4733 telephone-event packets (its bundled pcaps): the
    digits arrive as DtmfReceived events."""
    (workdir / "pcap").symlink_to("/usr/share/sip-tester")
    media = '<exec play_pcap_audio="pcap/dtmf_2833_1.pcap"/>'
    sf = scenario("uac_tone.xml", workdir, TO_USER="+15554445555", UA="sipp-dtmf", HOLD_MS="1500", MEDIA=media)
    answerer = Answerer()
    engine.set_incoming_handler(answerer)
    async with running(sipp_to(engine, sf, "-s", "+15554445555", "-m", "1"), cwd=workdir, limit=20, name="sipp") as sipp:
        incoming = await asyncio.wait_for(answerer.calls.get(), 10)
        digits = [e.digit async for e in incoming.call.events() if isinstance(e, DtmfReceived)]
        assert (await sipp.wait(10)).rc == 0
    assert digits == ["1"]


async def test_a_peers_refer_never_makes_us_dial(engine: BaresipEngine, workdir: Path) -> None:
    """An unknown caller asks us to transfer it to a premium number: the REFER is answered 603 Decline
    (no 202, no NOTIFY), nothing dialled."""
    answerer = Answerer()
    engine.set_incoming_handler(answerer)
    received: list[bytes] = []

    class Target(asyncio.DatagramProtocol):  # where the REFER points: it must hear nothing
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            received.append(data)

    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(Target, local_addr=(HOST, 0))
    port = transport.get_extra_info("sockname")[1]
    sf = scenario("uac_refer.xml", workdir, TO_USER="+15551112222", UA="sipp-test", HOLD_MS="800",
                  REFER_TO=f"sip:+19005550000@{HOST}:{port}")
    try:
        async with running(sipp_to(engine, sf, "-m", "1"), cwd=workdir, limit=20, name="sipp") as sipp:
            result = await sipp.wait(15)
        assert result.rc == 0, result.stdout[-6000:]  # the REFER got its 603 and the call ended normally
        incoming = answerer.calls.get_nowait()
        await asyncio.wait_for(incoming.call.wait_ended(), 5)
        await asyncio.sleep(0.5)
        assert received == []  # no INVITE ever went to the Refer-To target
        assert engine.active_call_count == 0
    finally:
        transport.close()
