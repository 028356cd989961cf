"""Media tick benchmark: CPU per call per second of audio for 1, 10, 100 and 200 simulated calls.

    python -m bench.media_tick [--seconds 10] [--calls 1,10,100,200]

Each simulated call is a G.711-rate (8 kHz) stream fed 20 ms per tick with real espeak-ng speech
separated by silence (calls start at different offsets), through the whole tick: inbound ring →
stateful resampling to 16 kHz → ONE batched Silero VAD run per tick → endpointing/barge-in, and the
call's stereo recording. The clock is virtual (no sleeping): the figure is process CPU time / simulated
audio time, i.e. % of one core per call. Also measures:
- the same VAD windows run one stream at a time, to show what batching saves;
- pipecat's Silero VAD analyzer (one per call, as pipecat runs it) on the same audio, in its own
  virtualenv (`--pipecat PYTHON`), and the CPU ratio pipecat / ours at the same number of calls;
- the pipeline's own added latency in real time (bench.pipeline_latency): end of speech detected →
  first agent audio handed to the engine, with providers that answer instantly.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import subprocess
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

from media.blas import single_threaded_blas
from media.recording import RecordingWriter, StereoRecorder
from media.resample import Resampler
from media.tick import MediaTick
from media.vad import SileroModel, VadBank

from .pipeline_latency import measure

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


def bench_tick(model: SileroModel, track: np.ndarray, calls: int, seconds: float,
               record_dir: Path | None = None) -> tuple[float, int, int]:
    tick = MediaTick(model)
    writer = RecordingWriter()
    recorders = []
    for i in range(calls):
        tick.add_stream(i, in_rate=8000)
        if record_dir is not None:
            recorders.append(StereoRecorder(record_dir / f"call-{calls}-{i}.wav", 8000, writer=writer))
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
            if recorders:
                recorders[i].write_caller(track[o : o + 160])
        events += len(tick.process((k + 1) * 0.02))
        if recorders:
            for i in range(calls):
                recorders[i].write_agent(tick.pull_tx(i))
    for r in recorders:
        r.close().result()
    writer.stop()
    # the writer thread's file I/O is part of the process CPU time measured here
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
    ap.add_argument("--pipecat", default=".venv-pipecat/bin/python", help="python of a venv with pipecat-ai")
    ap.add_argument("--pipecat-calls", type=int, default=20)
    ap.add_argument("--latency-turns", type=int, default=8)
    args = ap.parse_args()
    model = SileroModel()
    track = speech_track(args.seconds + 30)
    print(f"media tick: 8 kHz calls, speech + silence, {args.seconds:g} s of audio each, virtual clock, "
          "recording on")
    print(f"{'calls':>6} {'cpu s':>7} {'% core/call':>12} {'µs/call/tick':>13} {'vad runs':>9} {'events':>7}")
    ours: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="sbrec") as tmp:
        for calls in sorted({*(int(c) for c in args.calls.split(",")), args.pipecat_calls}):
            cpu, events, runs = bench_tick(model, track, calls, args.seconds, Path(tmp))
            pct = cpu / args.seconds / calls * 100
            ours[calls] = pct
            per_tick = cpu / (args.seconds / 0.02) / calls * 1e6
            print(f"{calls:>6} {cpu:>7.3f} {pct:>11.3f}% {per_tick:>13.1f} {runs:>9} {events:>7}")
    batched, single = bench_vad_ratio(model, track, 100, 30)
    print(
        f"Silero VAD per 32 ms window: batched x100 {batched:.1f} µs/stream, one stream per run "
        f"{single:.1f} µs/stream: batching is {single / batched:.1f}x cheaper"
    )
    print("target: <= 0.3 % of a core per listening call at 100 calls")
    compare_pipecat(args, track, ours)
    latency(args)


def compare_pipecat(args: argparse.Namespace, track: np.ndarray, ours: dict[int, float]) -> None:
    n = args.pipecat_calls
    if not Path(args.pipecat).exists():
        print(f"pipecat: {args.pipecat} not found (make bench-media creates .venv-pipecat)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "track.npy"
        np.save(path, track)
        for rate, label in ((16000, "its telephony default: 8 kHz resampled to a 16 kHz pipeline"),
                            (8000, "the 8 kHz audio straight into the analyzer")):
            out = subprocess.run([args.pipecat, str(Path(__file__).with_name("pipecat_vad.py")), str(path), str(n),
                                  str(args.seconds), str(rate)], capture_output=True, text=True, check=True,
                                 timeout=900)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            pct = result["cpu"] / result["seconds"] / n * 100
            print(f"pipecat SileroVADAnalyzer, {n} calls, {label}: {pct:.3f}% of a core per call vs ours "
                  f"(whole tick with recording) {ours[n]:.3f}%: pipecat costs {pct / ours[n]:.1f}x more")
    print("target: >= 5x less CPU per call than pipecat")


def latency(args: argparse.Namespace) -> None:
    stop_ms = 600.0
    track = speech_track(0)[: int(8000 * 2.6)]  # one sentence and its trailing silence
    result = asyncio.run(measure(track, args.latency_turns, stop_ms))
    if not result["added_ms"]:
        print("pipeline latency: no turn was detected")
        return

    def stats(key: str) -> str:
        v = np.array(result[key])
        return f"p50 {np.percentile(v, 50):.1f} ms, p90 {np.percentile(v, 90):.1f} ms, max {v.max():.1f} ms"

    print(f"pipeline latency over {len(result['added_ms'])} turns (instant providers, real-time 20 ms tick, "
          f"end-of-speech silence {stop_ms:.0f} ms):")
    print(f"  added by the pipeline: end of speech detected -> first agent audio to the engine: "
          f"{stats('added_ms')} (target <= 30 ms)")
    print(f"  beyond the silence, from the endpointer's speech end (32 ms VAD windows): {stats('beyond_endpointed_ms')}")
    print(f"  beyond the silence, from the last voiced sample on the wire (adds Silero's own end-of-speech "
          f"lag): {stats('beyond_voiced_end_ms')}")


if __name__ == "__main__":
    main()
