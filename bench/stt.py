"""The local recogniser on the demo's own questions, as a phone call hears them.

Input: the demo agent's expected questions (`DEMO_PHRASES`, 18 phrases) and 6 other questions a caller may
ask that are not in that list (`OTHER_QUESTIONS`: out of grammar), spoken by two espeak-ng voices
(`en-us`, the demo's voice, and `en-us+f3`) at 130, 150, 170 and 190 words/min, resampled to 8 kHz with a
faint noise floor and silence around the speech, then G.711 μ-law encoded and decoded, as a phone line
delivers it. Each utterance is cut by the server's own VAD (Silero at 8 kHz) and endpointer with the
conversation's pre-roll, resampled to 16 kHz and pushed into a stream opened with the demo agent's phrases,
exactly as `agents.conversation` does on a call.

Every (voice, speed) block starts the engine afresh (new provider, new helper processes, the server's own
start-up warming) and its first utterance is the demo's headline question, so the first call after a
start is measured 8 times. Printed per engine, per voice and speed: word error rate, phrase accuracy,
latency (end of audio pushed → final transcript) p50/p90 and CPU seconds per utterance (this process and
every helper process it started); the other questions are reported apart.

    make bench-stt BENCH_ARGS="--engines pocketsphinx,hybrid --speeds 130,150,170,190"
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import subprocess
import time
import wave
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np
import psutil

from agents.knowledge.demo import DEMO_PHRASES
from agents.providers.base import SpeechToText
from agents.providers.sphinx_pool import normalise
from media.endpointing import Endpointer, TurnEventKind
from media.g711 import ulaw_decode, ulaw_encode
from media.resample import Resampler
from media.vad import SileroModel, VadBank, VadStream

LINE_RATE = 8000
STT_RATE = 16000
TICK = 160  # 20 ms at 8 kHz, as the media tick delivers caller audio
PREROLL_S = 0.6  # agents.conversation.PREROLL_SECONDS
VOICES = ("en-us", "en-us+f3")
SPEEDS = (130, 150, 170, 190)
FIRST_QUESTION = "what does switchboard do"
# Questions a caller may ask that are NOT among the demo agent's expected phrases (out of grammar).
OTHER_QUESTIONS = [
    "can i use my own phone number",
    "how many calls can it handle at the same time",
    "where are the recordings stored",
    "can i change the voice of the agent",
    "does it send a webhook when a call ends",
    "i would like to speak to a person please",
]


# ---------------------------------------------------------------- the phone line
def espeak(text: str, voice: str, wpm: int) -> tuple[np.ndarray, int]:
    wav = subprocess.run(["espeak-ng", "--stdout", "-v", voice, "-s", str(wpm), text], capture_output=True,
                         check=True, timeout=30).stdout
    with wave.open(io.BytesIO(wav)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16), w.getframerate()


def phone_line(pcm: np.ndarray, rate: int, *, seed: int, lead_s: float = 0.5, tail_s: float = 1.0,
               noise: float = 24.0) -> np.ndarray:
    """8 kHz G.711 μ-law (encoded and decoded) with a faint noise floor and silence around the speech."""
    x = Resampler(rate, LINE_RATE).process(pcm).astype(np.float64)
    x = np.concatenate([np.zeros(int(lead_s * LINE_RATE)), x, np.zeros(int(tail_s * LINE_RATE))])
    x += np.random.default_rng(seed).normal(0.0, noise, len(x))
    return ulaw_decode(ulaw_encode(np.clip(np.rint(x), -32768, 32767).astype(np.int16)))


def phone_utterance(text: str, voice: str, wpm: int, *, seed: int = 0) -> np.ndarray:
    return phone_line(*espeak(text, voice, wpm), seed=seed)


class Endpointing:
    """The server's VAD and endpointer over 20 ms ticks, cutting utterances the way the conversation does
    (pre-roll before "started speaking", everything up to "stopped speaking")."""

    def __init__(self, model: SileroModel | None = None) -> None:
        self.bank = VadBank(model or SileroModel(), LINE_RATE, capacity=4)

    def utterances(self, line: np.ndarray) -> list[np.ndarray]:
        vad, ep = VadStream(self.bank), Endpointer()
        preroll: list[np.ndarray] = []
        current: list[np.ndarray] | None = None
        out: list[np.ndarray] = []
        done = 0
        try:
            for i in range(0, len(line) - TICK + 1, TICK):
                frame = line[i : i + TICK]
                if current is not None:
                    current.append(frame)
                else:
                    preroll.append(frame)
                    while len(preroll) * TICK > PREROLL_S * LINE_RATE:
                        preroll.pop(0)
                for p in vad.process(frame):
                    done += self.bank.window
                    ev = ep.update(float(p), done / LINE_RATE)
                    if ev is None:
                        continue
                    if ev.kind is TurnEventKind.USER_STARTED_SPEAKING:
                        current, preroll = list(preroll), []
                    elif ev.kind is TurnEventKind.USER_STOPPED_SPEAKING and current:
                        out.append(Resampler(LINE_RATE, STT_RATE).process(np.concatenate(current)))
                        current = None
            if current:  # the line ended mid-utterance
                out.append(Resampler(LINE_RATE, STT_RATE).process(np.concatenate(current)))
        finally:
            vad.close()
        return out


# ---------------------------------------------------------------- measuring
def tree_cpu() -> float:
    """CPU seconds of this process and every process it started (recogniser helpers)."""
    me = psutil.Process()
    total = 0.0
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def wer_counts(ref: str, hyp: str) -> tuple[int, int]:
    r, h = ref.split(), hyp.split()
    d = np.zeros((len(r) + 1, len(h) + 1), np.int32)
    d[:, 0] = np.arange(len(r) + 1)
    d[0, :] = np.arange(len(h) + 1)
    for i in range(1, len(r) + 1):
        for j in range(1, len(h) + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (r[i - 1] != h[j - 1]))
    return int(d[-1, -1]), len(r)


@dataclass
class Result:
    engine: str
    voice: str
    wpm: int
    phrase: str
    heard: str
    latency_s: float
    cpu_s: float
    first: bool
    in_grammar: bool = True
    errors: int = field(init=False)
    words: int = field(init=False)

    def __post_init__(self) -> None:
        self.errors, self.words = wer_counts(self.phrase, self.heard)

    @property
    def correct(self) -> bool:
        return self.heard == self.phrase


async def recognise(stt: SpeechToText, utterances: list[np.ndarray], phrases: list[str], *,
                    wait_s: float = 600.0) -> tuple[str, float]:
    """One call: a stream with the agent's phrases, each utterance pushed and flushed as the conversation
    does. Returns the joined final text and the latency of the last final (end of audio → transcript)."""
    stream = stt.stream(phrases=phrases)
    texts: list[str] = []
    latency = 0.0
    try:
        it = aiter(stream)
        for u in utterances:
            stream.push_audio(u)
            stream.flush()
            t0 = time.perf_counter()
            while True:
                ev = await asyncio.wait_for(anext(it), wait_s)
                if ev.is_final:
                    break
            latency = time.perf_counter() - t0
            if ev.text.strip():
                texts.append(ev.text.strip())
    finally:
        await stream.aclose()
    return normalise(" ".join(texts)), latency


EngineFactory = Callable[[], Awaitable[SpeechToText]]


async def start_engine(kind: str) -> SpeechToText:
    """The local recogniser exactly as the server starts it."""
    from agents.providers.local_stt import start_local_stt

    return await start_local_stt(kind)


async def run_engine(kind: str, voices: tuple[str, ...], speeds: tuple[int, ...], phrases: list[str],
                     audio: dict[tuple[str, int, str], list[np.ndarray]], progress: bool) -> list[Result]:
    results: list[Result] = []
    order = [FIRST_QUESTION, *(p for p in phrases if p != FIRST_QUESTION), *OTHER_QUESTIONS]
    for voice in voices:
        for wpm in speeds:
            stt = await start_engine(kind)  # a fresh start: its first call is measured
            try:
                for k, phrase in enumerate(order):
                    cpu0 = tree_cpu()
                    heard, latency = await recognise(stt, audio[(voice, wpm, phrase)], phrases)
                    r = Result(kind, voice, wpm, phrase, heard, latency, tree_cpu() - cpu0, k == 0,
                               phrase in phrases)
                    results.append(r)
                    if progress and (not r.correct or r.first):
                        print(f"  {kind:<12} {voice:<9} {wpm} {'FIRST ' if r.first else ''}"
                              f"{phrase!r} -> {heard!r}", flush=True)
            finally:
                stats = getattr(stt, "stats", None)
                if stats:
                    ENGINE_STATS.setdefault(kind, Counter()).update(stats)
                await stt.aclose()
    return results


ENGINE_STATS: dict[str, Counter[str]] = {}  # the hybrid's paths: grammar, whisper, no_speech, rejected, shed


# ---------------------------------------------------------------- reporting
def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def row(label: str, rs: list[Result]) -> str:
    errors, words = sum(r.errors for r in rs), sum(r.words for r in rs)
    lat = [r.latency_s * 1000 for r in rs]
    cpu = [r.cpu_s for r in rs]
    return (f"{label:<34} {len(rs):>4} {100.0 * errors / max(1, words):>7.1f} "
            f"{100.0 * sum(r.correct for r in rs) / max(1, len(rs)):>8.1f} "
            f"{pct(lat, 50):>8.0f} {pct(lat, 90):>8.0f} {float(np.mean(cpu)):>8.3f}")


def report(results: list[Result], voices: tuple[str, ...], speeds: tuple[int, ...]) -> str:
    lines = [f"{'engine / voice / speed':<34} {'utts':>4} {'WER %':>7} {'phrase %':>8} "
             f"{'p50 ms':>8} {'p90 ms':>8} {'CPU s':>8}"]
    for engine in dict.fromkeys(r.engine for r in results):
        everything = [r for r in results if r.engine == engine]
        mine = [r for r in everything if r.in_grammar]
        lines.append(f"{engine}: the demo phrases (in the agent's phrase list)")
        for voice in voices:
            for wpm in speeds:
                lines.append(row(f"{engine} {voice} {wpm} wpm", [r for r in mine if r.voice == voice and r.wpm == wpm]))
        lines.append(row(f"{engine} ALL", mine))
        first = [r for r in mine if r.first]
        lines.append(row(f"{engine} first call after start", first))
        for r in first:
            lines.append(f"    first call {r.voice} {r.wpm}: {r.heard!r}")
        other = [r for r in everything if not r.in_grammar]
        if other:
            lines.append(f"{engine}: other questions (out of grammar)")
            for voice in voices:
                lines.append(row(f"{engine} {voice} other", [r for r in other if r.voice == voice]))
            lines.append(row(f"{engine} other ALL", other))
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", default=os.environ.get("BENCH_STT_ENGINES", "pocketsphinx,hybrid"),
                    help="comma-separated local recognisers (SWITCHBOARD_LOCAL_STT values)")
    ap.add_argument("--voices", default=",".join(VOICES))
    ap.add_argument("--speeds", default=",".join(map(str, SPEEDS)))
    ap.add_argument("--quiet", action="store_true", help="do not print each miss as it happens")
    args = ap.parse_args()
    voices = tuple(v for v in args.voices.split(",") if v)
    speeds = tuple(int(s) for s in args.speeds.split(",") if s)
    phrases = [normalise(p) for p in DEMO_PHRASES]
    print(f"input: {len(phrases)} demo phrases + {len(OTHER_QUESTIONS)} other questions x voices {', '.join(voices)} x {', '.join(map(str, speeds))} wpm, "
          "espeak-ng -> 8 kHz G.711 u-law (noise floor, silence padding) -> Silero VAD + endpointer -> 16 kHz",
          flush=True)
    cut = Endpointing()
    audio: dict[tuple[str, int, str], list[np.ndarray]] = {}
    for voice in voices:
        for wpm in speeds:
            for k, phrase in enumerate([*phrases, *OTHER_QUESTIONS]):
                audio[(voice, wpm, phrase)] = cut.utterances(phone_utterance(phrase, voice, wpm, seed=k))
    split = sum(len(u) != 1 for u in audio.values())
    print(f"{len(audio)} utterances prepared ({split} not cut as exactly one turn by the endpointer)", flush=True)
    results: list[Result] = []
    for engine in (e.strip() for e in args.engines.split(",") if e.strip()):
        t0 = time.perf_counter()
        results += asyncio.run(run_engine(engine, voices, speeds, phrases, audio, not args.quiet))
        print(f"{engine}: {time.perf_counter() - t0:.0f} s", flush=True)
    print()
    print(report(results, voices, speeds))
    for engine, stats in ENGINE_STATS.items():
        print(f"{engine} paths: {dict(stats)}")


if __name__ == "__main__":
    main()
