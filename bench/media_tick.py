"""Media tick benchmark: CPU per call per second of audio for 1, 10, 100 and 200 simulated calls.

    python -m bench.media_tick [--seconds 10] [--calls 1,10,100,200]

Each simulated call is a G.711-rate (8 kHz) stream fed 20 ms per tick with real espeak-ng speech
separated by silence (calls start at different offsets), through the whole tick: inbound ring →
stateful resampling to 16 kHz → ONE batched Silero VAD run per tick → endpointing/barge-in. The clock is
virtual (no sleeping): the figure is process CPU time / simulated audio time, i.e. % of one core per call.
Also measures the same VAD windows run one stream at a time, to show what batching saves.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import time
import wave

import numpy as np

from media.blas import single_threaded_blas
from media.resample import Resampler
from media.tick import MediaTick
from media.vad import SileroModel, VadBank

SENTENCES = [
    "Hello, I would like to book a table for two people tomorrow evening.",
    "Yes, that is right.",
    "Could you tell me when the pharmacy opens on Saturday morning?",
    "My account number is four five six seven eight.",
]


def speech_track(seconds: float) -> np.ndarray:
    """8 kHz int16: espeak sentences separated by 1.5 s of faint noise, repeated to `seconds`."""
    rng = np.random.default_rng(0)
    parts = []
    for text in SENTENCES:
        wav = subprocess.run(["espeak-ng", "--stdout", text], capture_output=True, check=True).stdout
        with wave.open(io.BytesIO(wav)) as w:
            x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16)
            parts.append(Resampler(w.getframerate(), 8000).process(x))
        parts.append(rng.normal(0, 60, 12000).astype(np.int16))
    track = np.concatenate(parts)
    reps = int(np.ceil(seconds * 8000 / len(track))) + 1
    return np.tile(track, reps)


def bench_tick(model: SileroModel, track: np.ndarray, calls: int, seconds: float) -> tuple[float, int, int]:
    tick = MediaTick(model)
    for i in range(calls):
        tick.add_stream(i, in_rate=8000)
    offsets = [(i * 7919) % (len(track) - int(seconds * 8000) - 160) for i in range(calls)]
    n_ticks = int(seconds / 0.02)
    events = 0
    # warm-up tick (plans, caches) is not measured
    for i in range(calls):
        tick.push_rx(i, np.zeros(160, np.int16))
    tick.process(0.0)
    c0 = time.process_time()
    for k in range(n_ticks):
        for i in range(calls):
            o = offsets[i] + k * 160
            tick.push_rx(i, track[o : o + 160])
        events += len(tick.process((k + 1) * 0.02))
    cpu = time.process_time() - c0
    return cpu, events, tick.vad_runs


def bench_vad_ratio(model: SileroModel, track: np.ndarray, streams: int, windows: int) -> tuple[float, float]:
    """CPU per window: batched over `streams` vs one stream per session.run (µs)."""
    x16 = Resampler(8000, 16000).process(track[: 8000 * 30])
    data = [
        np.stack([x16[(i * 4099 + j * 512) % (len(x16) - 512) :][:512] for i in range(streams)])
        for j in range(windows)
    ]
    bank = VadBank(model, 16000, capacity=streams)
    slots = [bank.open() for _ in range(streams)]
    with single_threaded_blas():
        c0 = time.process_time()
        for w in data:
            bank.infer(slots, w)
        batched = time.process_time() - c0
        c0 = time.process_time()
        for w in data:
            for i, slot in enumerate(slots):
                bank.infer([slot], w[i : i + 1])
        single = time.process_time() - c0
    n = streams * windows
    return batched / n * 1e6, single / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="simulated audio per run")
    ap.add_argument("--calls", default="1,10,100,200")
    args = ap.parse_args()
    model = SileroModel()
    track = speech_track(args.seconds + 30)
    print(f"media tick: 8 kHz calls, speech + silence, {args.seconds:g} s of audio each, virtual clock")
    print(f"{'calls':>6} {'cpu s':>7} {'% core/call':>12} {'µs/call/tick':>13} {'vad runs':>9} {'events':>7}")
    for calls in (int(c) for c in args.calls.split(",")):
        cpu, events, runs = bench_tick(model, track, calls, args.seconds)
        pct = cpu / args.seconds / calls * 100
        per_tick = cpu / (args.seconds / 0.02) / calls * 1e6
        print(f"{calls:>6} {cpu:>7.3f} {pct:>11.3f}% {per_tick:>13.1f} {runs:>9} {events:>7}")
    batched, single = bench_vad_ratio(model, track, 100, 30)
    print(
        f"Silero VAD per 32 ms window: batched x100 {batched:.1f} µs/stream, one stream per run "
        f"{single:.1f} µs/stream: batching is {single / batched:.1f}x cheaper"
    )
    print("target: <= 0.3 % of a core per listening call at 100 calls")


if __name__ == "__main__":
    main()
