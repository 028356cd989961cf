"""Pipecat's Silero VAD analyzer on the same audio, one analyzer per call (as pipecat runs it).

Runs in its own virtualenv (.venv-pipecat, made by `make bench-media`): pipecat-ai pins versions of
soxr and protobuf that the product does not share. Called by bench.media_tick:

    python bench/pipecat_vad.py TRACK.npy CALLS SECONDS RATE   → prints one JSON line

RATE 16000 is pipecat's telephony default (pipeline input 16 kHz: its Twilio serializer resamples the
8 kHz line audio with its soxr stream resampler, then the VAD analyses 512-sample windows); RATE 8000
feeds the 8 kHz audio straight to the analyzer (256-sample windows), which pipecat also supports.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time

import numpy as np


async def run(track: np.ndarray, calls: int, seconds: float, rate: int) -> float:
    from pipecat.audio.utils import create_stream_resampler
    from pipecat.audio.vad.silero import SileroVADAnalyzer

    analyzers = [SileroVADAnalyzer(sample_rate=rate) for _ in range(calls)]
    for a in analyzers:
        a.set_sample_rate(rate)  # what pipecat's pipeline does when it starts
    resamplers = [create_stream_resampler() for _ in range(calls)]
    ticks = int(seconds / 0.02)
    offsets = [(i * 7919) % (len(track) - int(seconds * 8000) - 160) for i in range(calls)]
    frames = [[track[o + k * 160 : o + (k + 1) * 160].tobytes() for k in range(ticks)] for o in offsets]
    for a in analyzers:  # warm-up, not measured
        a._run_analyzer(np.zeros(512, np.int16).tobytes())
    c0 = time.process_time()
    for k in range(ticks):
        for i, a in enumerate(analyzers):
            frame = frames[i][k]
            if rate != 8000:
                frame = await resamplers[i].resample(frame, 8000, rate)
            a._run_analyzer(frame)  # the work VADAnalyzer.analyze_audio runs in its executor
    return time.process_time() - c0


def main() -> None:
    track_path, calls, seconds, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    logging.disable(logging.CRITICAL)
    from loguru import logger

    logger.remove()
    cpu = asyncio.run(run(np.load(track_path), calls, seconds, rate))
    print(json.dumps({"calls": calls, "seconds": seconds, "rate": rate, "cpu": cpu}))


if __name__ == "__main__":
    main()
