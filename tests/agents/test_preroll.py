"""A caller turn starts PREROLL_SECONDS before its USER_STARTED_SPEAKING event on the audio clock, however late
the event comes (the VAD may run up to its backlog behind the audio the conversation already holds)."""

from __future__ import annotations

from collections import deque

import numpy as np

from agents.conversation import preroll_from

RATE = 8000


def _chunks(total_s: float) -> deque[np.ndarray]:
    """The call's audio in 20 ms chunks, each sample holding its own index (to see what was kept)."""
    n = int(total_s * RATE)
    return deque(np.arange(i, min(i + 160, n), dtype=np.int64) for i in range(0, n, 160))


def test_the_preroll_starts_at_its_sample_on_the_audio_clock():
    chunks = _chunks(1.6)  # a full preroll: samples 0 .. 12799
    heard = 12800
    first = 5003  # the event's audio time minus PREROLL_SECONDS, mid-chunk
    audio, n = preroll_from(chunks, heard, first, at_least=4800)
    flat = np.concatenate(audio)
    assert flat[0] == first and flat[-1] == heard - 1 and n == len(flat) == heard - first


def test_an_event_that_comes_late_keeps_the_onset_a_recent_window_would_lose():
    chunks = _chunks(1.6)
    heard = 12800
    event_at = 4000 + 2400  # speech began at 0.5 s; the event (0.3 s later) reaches the conversation 0.8 s late
    first = event_at - 4800
    audio, n = preroll_from(chunks, heard, first, at_least=4800)
    assert np.concatenate(audio)[0] == first <= 4000  # the onset is in the turn
    assert heard - 4800 > 4000  # the last 0.6 s alone (the old rule) would have started after it


def test_never_shorter_than_the_recent_window_nor_than_what_there_is():
    chunks = _chunks(1.6)
    audio, n = preroll_from(chunks, 12800, first=10**9, at_least=4800)  # a clock that says "later than all"
    assert n == 4800 and np.concatenate(audio)[0] == 12800 - 4800
    short = _chunks(0.3)
    audio, n = preroll_from(short, 2400, first=-500, at_least=4800)  # a call younger than the preroll
    assert n == 2400 and np.concatenate(audio)[0] == 0
