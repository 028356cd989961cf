"""DeepgramSTT through the real deepgram-sdk against a loopback server speaking Deepgram's live protocol."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
from fake_deepgram import Drop, FakeDeepgram, Refuse, Say, SendError
from speech_helpers import Collector, tone

from agents.providers.deepgram_stt import DeepgramSTT
from agents.providers.retry import RetryPolicy

FAST = RetryPolicy(retries=2, backoff=(0.01, 0.02), budget_s=2.0)


@pytest.fixture
async def server() -> AsyncIterator[FakeDeepgram]:
    fake = await FakeDeepgram().start()
    yield fake
    await fake.stop()


def make(server: FakeDeepgram, **kw: object) -> DeepgramSTT:
    kw.setdefault("policy", FAST)
    return DeepgramSTT(api_key=kw.pop("api_key", server.key), base_url=server.base_url, **kw)  # type: ignore[arg-type]


async def test_utterances_over_one_connection(server: FakeDeepgram) -> None:
    server.script = [Say("Hello there.", interim="hello"), Say("Book a table for two.")]
    stt = make(server, model="nova-3", language="en-US")
    stream = stt.stream(phrases=["book a table", "opening hours"])
    c = Collector(stream)
    first, second = tone(300, 1.0), tone(500, 0.8)
    stream.push_audio(first)
    stream.flush()
    t1 = await c.final(1)
    stream.push_audio(second)
    stream.flush()
    t2 = await c.final(2)
    stream.end_input()
    await asyncio.wait_for(c.ended.wait(), 5)

    assert (t1.text, t2.text) == ("Hello there.", "Book a table for two.")
    assert [i.text for i in c.interims] == ["hello"]
    assert 0 <= t1.start_ms < t1.end_ms <= 1000 and 1000 <= t2.start_ms < t2.end_ms <= 1800
    assert t1.confidence == pytest.approx(0.93) and t1.latency_ms > 0
    assert c.error is None
    assert len(server.seen) == 1  # one connection for the whole call
    conn = server.seen[0]
    assert conn.query["model"] == "nova-3" and conn.query["encoding"] == "linear16"
    assert conn.query["sample_rate"] == "16000" and conn.query["channels"] == "1"
    assert conn.query["interim_results"] == "true" and conn.query["language"] == "en-US"
    assert "book a table" in request_keyterms(conn.query_string)
    assert conn.headers["Authorization"] == f"Token {server.key}"
    # PCM audio goes uncompressed: the SDK's websocket would offer permessage-deflate (zlib on every frame)
    assert "Sec-WebSocket-Extensions" not in conn.headers
    assert bytes(conn.audio) == first.astype("<i2").tobytes() + second.astype("<i2").tobytes()
    assert conn.finalize_audio == [first.astype("<i2").tobytes(), second.astype("<i2").tobytes()]
    assert conn.messages == ["Finalize", "Finalize", "CloseStream"]
    assert not server.problems


def request_keyterms(query_string: str) -> list[str]:
    from urllib.parse import parse_qs

    return parse_qs(query_string).get("keyterm", [])


async def test_keepalive_while_idle(server: FakeDeepgram) -> None:
    server.script = [Say("still there")]
    stream = make(server, keepalive_s=0.05).stream()
    c = Collector(stream)
    await asyncio.sleep(0.3)
    stream.push_audio(tone(400, 0.5))
    stream.flush()
    assert (await c.final(1)).text == "still there"
    conn = server.seen[0]
    assert conn.messages.count("KeepAlive") >= 3 and conn.messages[-1] == "Finalize"
    await c.close()


async def test_final_without_from_finalize(server: FakeDeepgram) -> None:
    """An is_final result covering all the audio completes the utterance; silence after Finalize waits
    for the timeout and gives an empty final (one final per flush, always)."""
    server.script = [Say("covered", from_finalize=False), Say("", silent=True)]
    stream = make(server, finalize_timeout_s=0.4).stream()
    c = Collector(stream)
    stream.push_audio(tone(400, 0.5))
    stream.flush()
    t1 = await c.final(1)
    assert t1.text == "covered" and t1.latency_ms < 300
    stream.push_audio(tone(400, 0.2))
    stream.flush()
    t2 = await c.final(2)
    assert t2.text == "" and t2.latency_ms >= 350
    await c.close()


async def test_dropped_connection_replays_the_utterance(server: FakeDeepgram) -> None:
    server.connections = [Drop(after_bytes=6400)]
    server.script = [Say("are you open today")]
    stream = make(server).stream()
    c = Collector(stream)
    audio = tone(350, 1.0)
    stream.push_audio(audio)
    stream.flush()
    t = await c.final(1)
    assert t.text == "are you open today" and 0 <= t.start_ms < t.end_ms <= 1000
    assert len(server.seen) == 2
    assert bytes(server.seen[1].audio) == audio.astype("<i2").tobytes()  # the whole utterance again
    await c.close()


async def test_drop_at_finalize_and_error_message_are_retried(server: FakeDeepgram) -> None:
    server.connections = [Drop(on_finalize=True), SendError(after_bytes=3200)]
    server.script = [Say("third time lucky")]
    stream = make(server).stream()
    c = Collector(stream)
    stream.push_audio(tone(350, 0.5))
    stream.flush()
    assert (await c.final(1)).text == "third time lucky"
    assert len(server.seen) == 3
    await c.close()


async def test_refused_handshakes_retried(server: FakeDeepgram) -> None:
    server.connections = [Refuse(503), Refuse(429)]
    server.script = [Say("made it")]
    stream = make(server).stream()
    c = Collector(stream)
    await asyncio.sleep(0.1)  # the eager connection was refused while idle: nothing lost
    stream.push_audio(tone(350, 0.3))
    stream.flush()
    assert (await c.final(1)).text == "made it"
    assert server.refused == [503, 429]
    await c.close()


async def test_bad_key_is_not_retried(server: FakeDeepgram) -> None:
    stream = make(server, api_key="wrong").stream()
    c = Collector(stream)
    err = await c.failure()
    assert not err.retryable and err.reason == "auth" and err.provider == "deepgram"
    assert server.refused == [401]


async def test_undecodable_audio_close_is_final(server: FakeDeepgram) -> None:
    server.connections = [Drop(after_bytes=1, code=1008, reason="DATA-0000")]
    stream = make(server).stream()
    c = Collector(stream)
    stream.push_audio(tone(350, 0.3))
    stream.flush()
    err = await c.failure()
    assert not err.retryable and err.reason == "bad_request"
    assert len(server.seen) == 1


async def test_gives_up_after_the_retry_budget(server: FakeDeepgram) -> None:
    server.connections = [Drop(after_bytes=3200) for _ in range(6)]
    stream = make(server).stream()
    c = Collector(stream)
    stream.push_audio(tone(350, 0.5))
    stream.flush()
    err = await c.failure()
    assert err.retryable and err.reason == "connection"
    assert len(server.seen) == 3  # the first try and two retries
    assert c.finals == []


async def test_connection_refused_is_retryable() -> None:
    stt = DeepgramSTT(api_key="k", base_url="http://127.0.0.1:9", policy=RetryPolicy(retries=1, backoff=(0.01,)))
    stream = stt.stream()
    c = Collector(stream)
    stream.push_audio(np.zeros(1600, np.int16))
    stream.flush()
    err = await c.failure()
    assert err.retryable and err.reason == "connection"


async def test_a_telephone_lines_8_khz_goes_as_it_is(server: FakeDeepgram) -> None:
    server.script = [Say("Book a table for two.")]
    stt = make(server, sample_rate=8000)
    stream = stt.stream()
    c = Collector(stream)
    audio = tone(300, 1.5, rate=8000)
    stream.push_audio(audio)
    stream.flush()
    final = await c.final(1)
    stream.end_input()
    await asyncio.wait_for(c.ended.wait(), 5)
    conn = server.seen[0]
    assert conn.query["sample_rate"] == "8000"
    assert bytes(conn.audio) == audio.astype("<i2").tobytes()
    assert 0 <= final.start_ms < final.end_ms <= 1500  # times in the 8 kHz stream's own clock
    with pytest.raises(ValueError, match="sample_rate"):
        make(server, sample_rate=44100)
