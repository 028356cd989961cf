"""Voice-to-voice latency of a real SIP call, measured at the caller, with cloud-like provider stand-ins.

    python -m bench.v2v [--turns 36] [--calls 4] [--speculate-ms 100] [--stop-ms 600] [--pauses 0,0,250,350,450,0]

The worker is the real server's telephony in this process (baresip SIP engine, shared media tick, Silero
VAD, endpointing, the conversation runtime) with an agent that uses cloud providers — all pointed at the
stand-ins (bench.standins, their own process): Deepgram-protocol STT (final transcript 150 ms after the
voiced audio ends), OpenAI-protocol LLM (first token at 300 ms), ElevenLabs-protocol TTS (first audio at
100 ms). The caller is a second baresip engine in a child process that dials ``sip:demo@…`` over real
SIP/RTP (G.711 μ-law) and, per turn, streams an espeak-ng sentence in real time (20 ms frames), then
listens. The turns are split over ``--calls`` calls placed one after another: where in its 20 ms the
worker's shared tick reads a call's packets is fixed for a call and random between calls, and moves that
call's figures by up to a 20 ms step, so one call is one draw of it.

Per turn: voice-to-voice = the caller's last voiced sample leaving its engine → the first voiced sample
of the agent's reply read from its engine (after the caller's own jitter buffer, as a phone would play
it). The utterance set mixes plain sentences and sentences with one mid-sentence pause (``--pauses``
milliseconds, a pause of 0 = none). A turn is CUT OFF when the agent's voice reaches the caller before the
caller finished the sentence (the agent took a pause for the end). The worker's conversation counts
speculative replies started, spoken, and wasted (thrown away because the caller went on).

``--speculate-ms 0`` is the path without speculation (nothing starts before the endpointer's end of the turn).
The end of a turn: ``--stop-ms`` of silence, or — once the recogniser's words are in — 550 ms after words that
read as a finished sentence, 1000 ms after an unfinished one (agents.turn_end). The STT stand-in transcribes by
being told: the caller posts each phrase's words as it starts speaking it. Each sentence meets every pause.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import io  # noqa: E402
import logging  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import wave  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

HOST = "127.0.0.1"
RATE = 8000
FRAME = RATE // 50
VOICED_RMS = 400.0
SENTENCES = [
    ("I would like to book a table", "for two people tomorrow evening"),
    ("Could you tell me when", "the pharmacy opens on Saturday"),
    ("My account number is", "four five six seven eight"),
    ("What does Switchboard do", "for a small business like mine"),
    ("Please send the invoice", "to my office address"),
    ("I need to change", "my delivery date to Friday"),
]

log = logging.getLogger("bench.v2v")


def speak(text: str) -> np.ndarray:
    """espeak-ng speech at 8 kHz int16, trimmed of its leading and trailing silence."""
    from media.resample import Resampler

    out = subprocess.run(["espeak-ng", "--stdout", "-s", "165", text], capture_output=True, check=True).stdout
    with wave.open(io.BytesIO(out)) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16)
        rate = w.getframerate()
    y = Resampler(rate, RATE).process(x)
    voiced = np.flatnonzero(np.abs(y) > 300)
    return y[max(0, voiced[0] - 80): voiced[-1] + 80] if len(voiced) else y


@dataclass
class Utterance:
    text: str
    pause_ms: int
    pcm: np.ndarray
    last_voiced: int  # sample index just after the last voiced frame
    parts: list[tuple[int, str]] = field(default_factory=list)  # (first sample, words): told to the STT stand-in


def utterances(turns: int, pauses: list[int]) -> list[Utterance]:
    rng = np.random.default_rng(7)
    cache: dict[str, np.ndarray] = {}
    out = []
    for i in range(turns):
        a, b = SENTENCES[i % len(SENTENCES)]
        pause = pauses[(i + i // len(SENTENCES)) % len(pauses)]  # each sentence meets every pause in turn
        for part in (a, b, f"{a} {b}"):
            if part not in cache:
                cache[part] = speak(part)
        if pause:
            gap = rng.normal(0, 30, int(pause * RATE / 1000)).astype(np.int16)
            pcm = np.concatenate([cache[a], gap, cache[b]])
            text = f"{a} … ({pause} ms) … {b}"
            parts = [(0, a), (len(cache[a]) + len(gap), b)]
        else:
            pcm = cache[f"{a} {b}"]
            text = f"{a} {b}"
            parts = [(0, text)]
        frames = pcm[: len(pcm) // FRAME * FRAME].reshape(-1, FRAME).astype(np.float64)
        voiced = np.flatnonzero(np.sqrt((frames ** 2).mean(axis=1)) > VOICED_RMS)
        out.append(Utterance(text, pause, pcm, (int(voiced[-1]) + 1) * FRAME, parts))
    return out


# --------------------------------------------------------------------------- the caller (own process)


@dataclass
class TurnResult:
    text: str
    pause_ms: int
    v2v_ms: float | None  # None: no reply heard
    cut_off: bool
    sent_at: float | None = None  # monotonic: the last voiced sample left the caller
    heard_at: float | None = None  # monotonic: the reply's first voiced sample was read by the caller
    call: int = 0  # which of the benchmark's calls


def caller_main(target: str, utts: list[Utterance], conn: Any, script_url: str) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        results = asyncio.run(_caller(target, utts, conn, script_url))
        conn.send(results)
    except BaseException as exc:  # reported to the benchmark
        import traceback

        conn.send(RuntimeError(f"caller failed: {exc!r}\n{traceback.format_exc()}"))
    finally:
        conn.close()


def _rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0


async def _caller(target: str, utts: list[Utterance], conn: Any, script_url: str) -> list[TurnResult]:
    import aiohttp

    from bench.sip_load import free_port
    from sipcore import create_engine
    from sipcore.engine import EngineConfig

    engine = create_engine()
    rtp = free_port(200)
    await engine.start(EngineConfig(host=HOST, port=free_port(), rtp_port_min=rtp, rtp_port_max=rtp + 199,
                                    max_calls=4, timer_slack_us=0))  # the phone: the same on every run
    loop = asyncio.get_running_loop()
    results: list[TurnResult] = []
    noise = np.random.default_rng(3)
    http = aiohttp.ClientSession()
    told: set[asyncio.Task[Any]] = set()

    def tell(words: str) -> None:  # the STT stand-in transcribes by being told (off the 20 ms loop)
        task = loop.create_task(http.post(script_url, json={"text": words}))
        told.add(task)
        task.add_done_callback(told.discard)

    try:
        call = await engine.dial(target, answer_timeout=10)
        await asyncio.wait_for(call.wait_answered(), 15)
        next_at = loop.time()

        async def tick() -> None:
            nonlocal next_at
            next_at += FRAME / RATE
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.2:
                next_at = loop.time()

        def comfort() -> np.ndarray:
            if call.tx_buffered >= 2 * FRAME:  # never let the caller's transmit queue grow (timing stays true)
                return np.zeros(0, np.int16)
            return noise.normal(0, 30, FRAME).astype(np.int16)

        # settle: let media start and the greeting (if any) play out; listen until 2 s of quiet
        quiet_since = loop.time()
        while loop.time() - quiet_since < 2.0:
            await tick()
            call.write_pcm(comfort())
            if _rms(call.read_pcm()) > VOICED_RMS:
                quiet_since = loop.time()
        for utt in utts:
            pcm = utt.pcm
            sent_last_voiced: float | None = None
            heard_at: float | None = None
            pos = 0
            parts = list(utt.parts)
            while pos < len(pcm):
                await tick()
                while parts and parts[0][0] < pos + FRAME:
                    tell(parts.pop(0)[1])
                frame = pcm[pos: pos + FRAME]
                if len(frame) < FRAME:
                    frame = np.concatenate([frame, np.zeros(FRAME - len(frame), np.int16)])
                ahead = call.tx_buffered / RATE  # queued before this frame: it leaves that much later
                call.write_pcm(frame)
                if pos < utt.last_voiced <= pos + FRAME:
                    sent_last_voiced = loop.time() + ahead + (utt.last_voiced - pos) / RATE
                pos += FRAME
                rx = call.read_pcm()
                if heard_at is None and _rms(rx) > VOICED_RMS:
                    heard_at = loop.time()  # while the caller still talks: cut off
            cut_off = heard_at is not None
            # listen for the reply (up to 5 s), then until it has finished (0.8 s of quiet)
            deadline = loop.time() + 5.0
            while heard_at is None and loop.time() < deadline:
                await tick()
                call.write_pcm(comfort())
                rx = call.read_pcm()
                if _rms(rx) > VOICED_RMS:
                    frames = rx[: len(rx) // FRAME * FRAME].reshape(-1, FRAME) if len(rx) >= FRAME else rx[None]
                    first = next(i for i, f in enumerate(frames) if _rms(f) > VOICED_RMS)
                    heard_at = loop.time() - (len(frames) - first - 1) * FRAME / RATE
            quiet_since = loop.time()
            while loop.time() - quiet_since < 0.8 and loop.time() < deadline + 10:
                await tick()
                call.write_pcm(comfort())
                if _rms(call.read_pcm()) > VOICED_RMS:
                    quiet_since = loop.time()
            v2v = None
            if heard_at is not None and sent_last_voiced is not None and not cut_off:
                v2v = (heard_at - sent_last_voiced) * 1000.0
            results.append(TurnResult(utt.text, utt.pause_ms, v2v, cut_off, sent_at=sent_last_voiced,
                                      heard_at=heard_at))
        conn.send(("turns-done", len(results), call.rtp_stats().rx_jitter_ms))
        while not conn.poll(0):  # wait for the benchmark to read the worker's counters
            await tick()
            call.write_pcm(comfort())
            call.read_pcm()
        await call.hangup()
        await asyncio.wait_for(call.wait_ended(), 10)
    finally:
        await engine.stop()
        await http.close()
    return results


# --------------------------------------------------------------------------- the worker (this process)


@dataclass
class Run:
    turns: list[TurnResult] = field(default_factory=list)
    conversation: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    trace: dict[str, list[float]] = field(default_factory=dict)
    caller_rx_jitter_ms: list[float] = field(default_factory=list)  # RFC 3550 interarrival jitter of the
    # worker's RTP at the caller, per call


async def run(args: argparse.Namespace, tmp: Path, dsn: str, standins: Any) -> Run:
    import multiprocessing as mp

    from agents.voices import VoiceCatalog
    from bench.sip_load import free_port, poll
    from media.endpointing import EndpointingConfig
    from store.crypto import SecretBox
    from store.db import create_pool
    from store.migrate import migrate
    from switchboard.bootstrap import ensure_demo
    from switchboard.calls.session import CallSession
    from switchboard.calls.telephony import Alias, Telephony
    from switchboard.config import Settings

    fields = {"stop_ms": args.stop_ms}
    if "speculate_ms" in EndpointingConfig.__dataclass_fields__:
        fields["speculate_ms"] = args.speculate_ms
    elif args.speculate_ms:
        raise SystemExit("this checkout's endpointer has no speculation: run with --speculate-ms 0")

    def endpointing(self: Any) -> EndpointingConfig:
        return EndpointingConfig(interruptible=self.agent.interruptible, **fields)

    CallSession._endpointing = endpointing  # type: ignore[method-assign]  # the benchmark's endpointing
    out = Run()
    trace = out.trace
    from switchboard.calls.media_loop import MediaLoop

    begin, play = MediaLoop.begin, MediaLoop.play

    from media.tick import MediaTick

    finish = MediaTick.finish

    def traced_finish(self: Any, job: Any) -> Any:  # when the endpointer decided what, on the wall clock
        events = finish(self, job)
        for ev in events:
            trace.setdefault(ev.event.kind.value, []).append(time.monotonic())
        return events

    MediaTick.finish = traced_finish  # type: ignore[method-assign]
    run_ahead = MediaTick.run_ahead

    def traced_run_ahead(self: Any) -> Any:  # silences ended from the audio's level, ahead of the VAD
        events = run_ahead(self)
        for ev in events:
            trace.setdefault(ev.event.kind.value, []).append(time.monotonic())
        return events

    MediaTick.run_ahead = traced_run_ahead  # type: ignore[method-assign]

    def traced_begin(self: Any, now: float) -> Any:  # when voiced caller audio reached the worker's tick
        for leg in self.legs.values():
            if not getattr(leg.call, "_bench_traced", False):
                read = leg.call.read_pcm

                def traced_read(read: Any = read) -> np.ndarray:
                    pcm = read()
                    if len(pcm) and np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) > VOICED_RMS:
                        trace.setdefault("rx_voiced", []).append(time.monotonic())
                    return pcm

                leg.call.read_pcm = traced_read
                leg.call._bench_traced = True
        return begin(self, now)

    def traced_play(self: Any, key: Any, pcm: np.ndarray) -> None:
        if np.abs(pcm).max(initial=0) > 1000:
            trace.setdefault("play", []).append(time.monotonic())
        play(self, key, pcm)

    MediaLoop.begin, MediaLoop.play = traced_begin, traced_play  # type: ignore[method-assign]
    _trace_providers(trace)
    loop = asyncio.get_running_loop()
    rtp = free_port(400)
    env = Settings.from_env()  # A/B knobs: SWITCHBOARD_SIP_TIMER_SLACK_US, SWITCHBOARD_JITTER_BUFFER_MS
    settings = Settings(data_dir=tmp, database_url=dsn, sip_host=HOST, sip_port=free_port(), rtp_port_min=rtp,
                        rtp_port_max=rtp + 399, worker_id="v2v", api_host=HOST,
                        allow_private_urls=True,  # the stand-ins listen on loopback
                        sip_timer_slack_us=env.sip_timer_slack_us, jitter_buffer_ms=env.jitter_buffer_ms,
                        realtime=env.realtime)
    pool = await create_pool(dsn, max_size=4)
    tel = None
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            first = await ensure_demo(conn)
            config = {"response_engine": {"type": "llm", "base_url": f"{standins.base_url}/v1",
                                          "llm_model": "stand-in", "system_prompt": "Be brief."},
                      "stt": {"provider": "deepgram"}, "voice_id": "elevenlabs-rachel",
                      "begin_message": None, "first_speaker": "user", "interruptible": True}
            await conn.execute("UPDATE agents SET config = config || $2::jsonb WHERE id = $1", first.demo_agent_id,
                               config)
        voices = await loop.run_in_executor(None, VoiceCatalog.load_local)
        tel = Telephony(settings, pool, SecretBox(settings.resolved_secret_key()), voices,
                        aliases=[Alias("demo", first.org_id, first.demo_agent_id)])
        await tel.start()
        utts = await loop.run_in_executor(None, utterances, args.turns, args.pauses)
        overload = getattr(tel, "overload", None)
        if overload is not None:  # start-up (decoder warm-up) makes the loop late for a moment: wait it out
            await poll(lambda: overload.refusal_reason() is None, 30)
        ctx = mp.get_context("spawn")
        for k in range(args.calls):  # one call after another: each call's tick phase is a new draw
            share = utts[k * len(utts) // args.calls: (k + 1) * len(utts) // args.calls]
            parent, child = ctx.Pipe()
            caller = ctx.Process(target=caller_main, args=(f"sip:demo@{HOST}:{settings.sip_port}", share, child,
                                                          f"{standins.base_url}/script"),
                                 name=f"v2v-caller-{k}")
            await loop.run_in_executor(None, caller.start)  # spawning pickles and writes its state: 100-300 ms
            child.close()
            got: Any = None
            while True:
                ready = await loop.run_in_executor(None, parent.poll, 1.0)
                if ready:
                    got = parent.recv()
                    if isinstance(got, tuple) and got[0] == "turns-done":
                        out.caller_rx_jitter_ms.append(got[2])
                        conv = next((s.conversation for s in tel.sessions.values() if s.conversation), None)
                        if conv is not None:
                            for name in ("speculations", "speculations_used", "speculations_wasted",
                                         "interruptions"):
                                out.conversation[name] = out.conversation.get(name, 0) + (getattr(conv, name, 0) or 0)
                        parent.send("bye")
                        continue
                    break
                if not caller.is_alive():
                    raise SystemExit(f"the caller exited ({caller.exitcode}) without results")
            await loop.run_in_executor(None, caller.join, 10)
            if isinstance(got, BaseException):
                raise got
            for t in got:
                t.call = k
            out.turns.extend(got)
            await poll(lambda: not tel.sessions, 15)  # the call's row is final once its session is gone
        rows = await pool.fetch("SELECT metrics FROM calls WHERE worker_id = 'v2v'")
        out.metrics = _merged_metrics([r["metrics"] or {} for r in rows])
    finally:
        if tel is not None:
            await tel.stop()
        await pool.close()
    return out


def _trace_providers(trace: dict[str, list[float]]) -> None:
    """When the worker emitted the recogniser's final, asked the model, and asked for speech (wall clock)."""
    from agents.conversation import Conversation
    from agents.providers.deepgram_stt import DeepgramStream
    from agents.providers.openai_llm import OpenAILLM

    emit, stream, speak = DeepgramStream._emit_final, OpenAILLM.stream, Conversation._speak

    def traced_emit(self: Any, utt: Any) -> None:
        trace.setdefault("stt_final", []).append(time.monotonic())
        emit(self, utt)

    def traced_stream(self: Any, *a: Any, **kw: Any) -> Any:
        trace.setdefault("llm_request", []).append(time.monotonic())
        return stream(self, *a, **kw)

    async def traced_speak(self: Any, *a: Any, **kw: Any) -> None:
        trace.setdefault("tts_request", []).append(time.monotonic())
        await speak(self, *a, **kw)

    DeepgramStream._emit_final = traced_emit  # type: ignore[method-assign]
    OpenAILLM.stream = traced_stream  # type: ignore[method-assign]
    Conversation._speak = traced_speak  # type: ignore[method-assign]


_METRIC_KEYS = ("stt_latency_ms", "retrieval_ms", "llm_latency_ms", "tts_latency_ms", "voice_to_voice_ms")


def _merged_metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The calls' per-turn metrics as one set: p50/p90 of each over every turn of every call."""
    merged: dict[str, Any] = {}
    for key in _METRIC_KEYS:
        values = [t[key] for r in rows for t in (r.get("per_turn") or []) if isinstance(t.get(key), int | float)]
        merged[key] = ({"p50": round(float(np.percentile(values, 50)), 1),
                        "p90": round(float(np.percentile(values, 90)), 1)} if values else {"p50": None, "p90": None})
    return merged


def report(args: argparse.Namespace, res: Run) -> None:
    turns = res.turns
    v = [t.v2v_ms for t in turns if t.v2v_ms is not None]
    cut = [t for t in turns if t.cut_off]
    missing = [t for t in turns if t.v2v_ms is None and not t.cut_off]
    print(f"\n== bench-v2v: {len(turns)} turns over {args.calls} real SIP call(s) one after another (G.711 μ-law), "
          f"speculate at "
          f"{args.speculate_ms:g} ms of silence, confirm (speak) at 550 ms after finished-sounding words, 1000 after "
          f"unfinished, else {args.stop_ms:g} ms; stand-ins: STT final "
          f"150 ms after the audio ends, LLM first token 300 ms, TTS first audio 100 ms; {os.cpu_count()} cores ==")
    if v:
        print(f"voice-to-voice (caller's last voiced sample sent → first voiced sample received): p50 "
              f"{np.percentile(v, 50):.0f} ms, p90 {np.percentile(v, 90):.0f} ms, min {min(v):.0f}, max {max(v):.0f} "
              f"over {len(v)} turns   target p50 ≤ 650 ms: {'MET' if np.percentile(v, 50) <= 650 else 'MISSED'}")
    print(f"cut off (agent heard before the caller finished): {len(cut)}/{len(turns)} = "
          f"{len(cut) / max(1, len(turns)) * 100:.1f} %; no reply heard: {len(missing)}")
    for pause in sorted({t.pause_ms for t in turns}):
        sub = [t for t in turns if t.pause_ms == pause]
        vv = [t.v2v_ms for t in sub if t.v2v_ms is not None]
        print(f"   mid-sentence pause {pause:>4} ms: {len(sub):>3} turns, cut off {sum(t.cut_off for t in sub):>2}, "
              f"v2v p50 {np.percentile(vv, 50) if vv else float('nan'):.0f} ms")
    for t in missing:
        print(f"   no reply within 5 s: {t.text!r}")
    if args.calls > 1:
        per_call = []
        for k in range(args.calls):
            vk = [t.v2v_ms for t in turns if t.call == k and t.v2v_ms is not None]
            per_call.append(f"{np.percentile(vk, 50):.0f}" if vk else "–")
        print(f"   per call (p50, ms): {', '.join(per_call)} (where in its 20 ms the worker's tick reads a call's packets "
              "is fixed for the call and random between calls)")
    jitter = [j for j in res.caller_rx_jitter_ms if j is not None]
    if jitter:
        print(f"the worker's RTP pacing at the caller: interarrival jitter {', '.join(f'{j:.1f}' for j in jitter)} ms "
              "(RFC 3550, the caller's engine, last RTCP interval, per call)")
    c = res.conversation
    if c and c.get("speculations") is not None:
        started = c["speculations"] or 0
        print(f"speculation: {started} speculative replies started, {c['speculations_used']} spoken, "
              f"{c['speculations_wasted']} wasted (caller went on) = "
              f"{(c['speculations_wasted'] or 0) / max(1, started) * 100:.0f} % of those started")
    plays = sorted(res.trace.get("play", []))
    split: dict[str, list[float]] = {}
    for t in turns:
        if t.v2v_ms is None or t.sent_at is None or t.heard_at is None:
            continue
        rx = [x for x in res.trace.get("rx_voiced", []) if t.sent_at - 3 < x <= t.heard_at]
        if rx:
            split.setdefault("rx", []).append((max(rx) - t.sent_at) * 1000)
        first = next((p for p in plays if t.sent_at < p <= t.heard_at), None)
        until = first or t.heard_at  # marks behind the spoken reply: the last of each before it was handed over

        def last(kind: str, after: float, before: float) -> float | None:
            return max((x for x in res.trace.get(kind, []) if after < x <= before), default=None)

        llm = last("llm_request", t.sent_at, until)
        marks = {  # the endpointer's first pause and end after the sentence; the final the reply was asked from
            "paused": min((x for x in res.trace.get("user_paused", []) if t.sent_at < x <= t.heard_at), default=None),
            "stopped": min((x for x in res.trace.get("user_stopped_speaking", []) if t.sent_at < x <= t.heard_at),
                           default=None),
            "final": last("stt_final", t.sent_at, llm or until), "llm": llm,
            "tts": last("tts_request", t.sent_at, until)}
        for name, at in marks.items():
            if at is not None:
                split.setdefault(name, []).append((at - t.sent_at) * 1000)
        if first is not None:
            split.setdefault("play", []).append((first - t.sent_at) * 1000)
            split.setdefault("heard", []).append((t.heard_at - first) * 1000)
    if split:
        med = {k: f"{np.median(v):.0f}" for k, v in split.items()}
        print(f"split (medians, from the caller's last voiced sample): the worker's tick reads it at "
              f"{med.get('rx', '–')} ms (RTP + the worker's adaptive jitter buffer), endpointer USER_PAUSED at "
              f"{med.get('paused', '–')} ms, recogniser's final at {med.get('final', '–')} ms, model asked at "
              f"{med.get('llm', '–')} ms, speech asked at {med.get('tts', '–')} ms, "
              f"USER_STOPPED_SPEAKING (confirmed) at {med.get('stopped', '–')} ms, first "
              f"reply audio handed to the engine at {med.get('play', '–')} ms; then {med.get('heard', '–')} ms until the "
              f"caller reads it (worker's transmit buffer, RTP, the caller's jitter buffer)")
    m = res.metrics
    if m:
        keys = _METRIC_KEYS
        print("worker's own per-turn metrics (p50/p90): " + ", ".join(
            f"{k[:-3]} {m.get(k, {}).get('p50')}/{m.get(k, {}).get('p90')} ms" for k in keys if k in m)
            + " (worker v2v: from the endpointer's speech end to the first audio handed to the engine)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turns", type=int, default=36)
    ap.add_argument("--calls", type=int, default=4, help="calls the turns are split over, one after another")
    ap.add_argument("--speculate-ms", type=float, default=100.0, help="0: no speculation (the old path)")
    ap.add_argument("--stop-ms", type=float, default=600.0, help="the endpointer's confirmation silence")
    ap.add_argument("--pauses", default="0,0,250,350,450,0",
                    help="mid-sentence pause per turn, cycled (ms; 0 = a plain sentence)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    args.pauses = [int(x) for x in args.pauses.split(",")]
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from bench.standins import StandInProcess
    from store.db import embedded_database_url

    standins = StandInProcess(stt_final_ms=150.0, llm_first_ms=300.0, tts_first_ms=100.0)
    os.environ.update({"DEEPGRAM_BASE_URL": standins.base_url, "DEEPGRAM_API_KEY": "bench",
                       "ELEVENLABS_BASE_URL": standins.base_url, "ELEVENLABS_API_KEY": "bench",
                       "OPENAI_API_KEY": "bench", "SWITCHBOARD_ADMISSION": "off"})  # latency, not capacity
    try:
        with tempfile.TemporaryDirectory(prefix="sbv2v", dir="/tmp") as tmpname:
            tmp = Path(tmpname)
            dsn = embedded_database_url(tmp)
            import pgserver

            server = pgserver.get_server(tmp / "postgres")
            try:
                loop_factory = None
                try:
                    import uvloop

                    loop_factory = uvloop.new_event_loop
                except ImportError:
                    pass
                print(f"{args.turns} turns; stand-ins on {standins.base_url}; caller and worker on loopback …",
                      flush=True)
                with asyncio.Runner(loop_factory=loop_factory) as runner:
                    res = runner.run(run(args, tmp, dsn, standins))
            finally:
                server.cleanup()
    finally:
        standins.stop()
    report(args, res)


if __name__ == "__main__":
    main()
