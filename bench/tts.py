"""The local voices, as a caller hears them on a phone line and as a recogniser understands them.

Input: the phone-agent sentences in `bench/data/tts_sentences.txt` (20 sentences, 249 words, no digits).
Each local engine speaks every sentence through Switchboard's own provider (`EspeakTTS`, `FliteTTS`;
festival's `text2wave` when installed) asked for 8 kHz, one synthesis at a time, as a call does. The audio
then goes through the phone line of `make bench-stt` (0.5 s of silence before, 1 s after, a faint noise
floor, G.711 μ-law encoded and decoded), is resampled to 16 kHz and recognised by the local Whisper base
model the hybrid recogniser uses (`agents.providers.whisper_worker.WhisperService`: int8, one thread,
beam 5, English), one sentence per decode.

Printed per engine and voice:
- round-trip WER: word errors (substitutions + insertions + deletions, lower-case words; the digits Whisper
  writes are spelt out first, as the sentences spell numbers) over all sentences;
- time to first audio p50 / max: `synthesize()` called → first chunk of audio (process start included);
- CPU s per s of audio: the synthesis processes' CPU (user + system, `resource.RUSAGE_CHILDREN`, which
  counts exactly the reaped synthesis children) / seconds of audio produced;
- real-time factor: synthesis wall time / seconds of audio produced.
An engine is run once before it is measured (one sentence, not counted) so page-cache misses are not charged.

    make bench-tts
    make bench-tts BENCH_ARGS="--engines flite:kal16,espeak:en-us --show"
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import resource
import shutil
import time
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agents.providers.base import SynthesisStream, TextToSpeech
from agents.providers.espeak_tts import EspeakTTS
from agents.providers.flite_tts import FliteTTS
from agents.providers.sphinx_pool import normalise
from agents.providers.whisper_worker import WhisperService
from media.resample import Resampler

from .stt import LINE_RATE, STT_RATE, phone_line, wer_counts

SENTENCES = Path(__file__).parent / "data" / "tts_sentences.txt"
DEFAULT_ENGINES = ("espeak:en-us", "espeak:en-us+f3", "flite:kal16", "flite:slt", "flite:rms", "flite:awb",
                   "festival:cmu_us_slt_arctic_hts")


_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
         "seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_NUMBER = re.compile(r"\d+")


def number_words(n: int) -> str:
    """0-999 as English words (Whisper writes "eight" as "8"; the sentences spell numbers out)."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        return _ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + number_words(n % 100))
    return " ".join(_ONES[int(d)] for d in str(n))


def heard_words(text: str) -> str:
    """A transcript as lower-case words, its digits spelt out ("2:30" → "two thirty", "8am" → "eight am")."""
    return normalise(_NUMBER.sub(lambda m: f" {number_words(int(m.group()))} ", text.replace(":00", "")))


def load_sentences(path: Path = SENTENCES) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


class FestivalTTS(TextToSpeech):
    """festival's `text2wave` (only when installed), for comparison: not a Switchboard provider."""

    def __init__(self) -> None:
        self.executable = shutil.which("text2wave") or "text2wave"

    def synthesize(self, text: str, voice: str, sample_rate: int, *, speed: float | None = None) -> SynthesisStream:
        return SynthesisStream(self._run(text, voice, sample_rate), sample_rate)

    async def _run(self, text: str, voice: str, sample_rate: int) -> AsyncIterator[np.ndarray]:
        proc = await asyncio.create_subprocess_exec(
            self.executable, "-eval", f"(voice_{voice})", "-o", "/dev/stdout",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        out, _ = await proc.communicate(text.encode())
        with wave.open(io.BytesIO(out)) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16)
            rate = w.getframerate()
        yield Resampler(rate, sample_rate).process(pcm)


def engine(spec: str) -> tuple[TextToSpeech, str] | None:
    """`kind:voice` → (provider, voice), None when the engine is not installed here."""
    kind, _, voice = spec.partition(":")
    if kind == "espeak":
        return (EspeakTTS(), voice) if shutil.which("espeak-ng") else None
    if kind == "flite":
        return (FliteTTS(), voice) if shutil.which("flite") else None
    if kind == "festival":
        return (FestivalTTS(), voice) if shutil.which("text2wave") else None
    raise SystemExit(f"unknown engine {spec!r}: espeak:VOICE, flite:VOICE or festival:VOICE")


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


@dataclass
class Spoken:
    text: str
    pcm: np.ndarray  # 8 kHz int16
    first_audio_ms: float
    wall_s: float
    cpu_s: float
    heard: str = ""

    @property
    def audio_s(self) -> float:
        return len(self.pcm) / LINE_RATE


async def speak_all(tts: TextToSpeech, voice: str, sentences: list[str]) -> list[Spoken]:
    await tts.synthesize(sentences[0], voice, LINE_RATE).collect()  # not counted: loads the binary and voice
    out = []
    for text in sentences:
        c0, t0 = children_cpu(), time.perf_counter()
        stream = tts.synthesize(text, voice, LINE_RATE)
        pcm = await stream.collect()
        wall, cpu = time.perf_counter() - t0, children_cpu() - c0
        out.append(Spoken(text, pcm, stream.first_audio_ms or float("nan"), wall, cpu))
    await tts.aclose()
    return out


async def recognise(whisper: WhisperService, spoken: list[Spoken]) -> None:
    for k, s in enumerate(spoken):
        line = phone_line(s.pcm, LINE_RATE, seed=k)
        result = await whisper.transcribe(Resampler(LINE_RATE, STT_RATE).process(line))
        s.heard = heard_words(result.text)


@dataclass
class Row:
    spec: str
    words: int
    errors: int
    ttfa_p50: float
    ttfa_max: float
    cpu_per_s: float
    rtf: float
    audio_s: float
    cpu_s: float
    wall_s: float

    def line(self) -> str:
        return (f"{self.spec:<34} {100.0 * self.errors / max(1, self.words):>6.1f} {self.errors:>4}/{self.words:<4}"
                f" {self.ttfa_p50:>8.1f} {self.ttfa_max:>8.1f} {self.cpu_per_s:>9.4f} {self.rtf:>7.4f}"
                f" {self.audio_s:>7.1f} {self.cpu_s:>7.2f} {self.wall_s:>7.2f}")


HEADER = (f"{'engine:voice':<34} {'WER %':>6} {'err/words':>9} {'TTFA p50':>8} {'TTFA max':>8} {'CPU s/s':>9}"
          f" {'RTF':>7} {'audio s':>7} {'CPU s':>7} {'wall s':>7}")


def summarise(spec: str, spoken: list[Spoken]) -> Row:
    errors = words = 0
    for s in spoken:
        e, w = wer_counts(normalise(s.text), s.heard)
        errors, words = errors + e, words + w
    audio = sum(s.audio_s for s in spoken)
    cpu = sum(s.cpu_s for s in spoken)
    wall = sum(s.wall_s for s in spoken)
    ttfa = [s.first_audio_ms for s in spoken]
    return Row(spec, words, errors, float(np.percentile(ttfa, 50)), float(max(ttfa)), cpu / audio, wall / audio,
               audio, cpu, wall)


async def run(specs: list[str], sentences: list[str], show: bool) -> list[Row]:
    whisper = WhisperService("base", max_queue=1, threads=1)
    t0 = time.perf_counter()
    await whisper.start()
    print(f"Whisper base loaded in {time.perf_counter() - t0:.1f} s (process {whisper.pid})", flush=True)
    rows = []
    try:
        for spec in specs:
            found = engine(spec)
            if found is None:
                print(f"{spec}: not installed here, skipped", flush=True)
                continue
            tts, voice = found
            spoken = await speak_all(tts, voice, sentences)
            await recognise(whisper, spoken)
            row = summarise(spec, spoken)
            rows.append(row)
            print(row.line(), flush=True)
            if show:
                for s in spoken:
                    if s.heard != normalise(s.text):
                        print(f"    said {normalise(s.text)!r}\n    heard {s.heard!r}")
    finally:
        await whisper.aclose()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", default=",".join(DEFAULT_ENGINES), help="comma-separated kind:voice")
    ap.add_argument("--sentences", type=Path, default=SENTENCES)
    ap.add_argument("--show", action="store_true", help="print every sentence not heard exactly")
    args = ap.parse_args()
    sentences = load_sentences(args.sentences)
    words = [len(normalise(s).split()) for s in sentences]
    print(f"input: {len(sentences)} sentences, {sum(words)} words ({min(words)}-{max(words)} per sentence) from "
          f"{args.sentences}; synthesis at 8 kHz, one at a time -> 0.5 s silence + speech + 1 s silence, noise "
          f"sigma 24, G.711 u-law encode/decode -> 16 kHz -> Whisper base (int8, 1 thread, beam 5, en), one "
          f"decode per sentence", flush=True)
    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
          flush=True)
    print(HEADER, flush=True)
    rows = asyncio.run(run([s.strip() for s in args.engines.split(",") if s.strip()], sentences, args.show))
    print()
    print("TTFA: ms from synthesize() to the first audio chunk; CPU s/s: synthesis processes' CPU seconds per second "
          "of audio; RTF: synthesis wall time / audio duration")
    print(HEADER)
    for row in sorted(rows, key=lambda r: r.errors / max(1, r.words)):
        print(row.line())


if __name__ == "__main__":
    main()
