"""Timer slack for the stack's per-call audio threads while its SIP thread runs real-time (Linux).

A thread switched to a real-time policy loses its timer slack, and the threads it starts inherit none: with
the SIP thread in ``SCHED_RR`` each call's audio threads (started from it, normal by reset-on-fork) would poll
their 4 ms clock with no slack, about twice the wake-ups (bench-sip, 81 talking calls: the per-call audio
threads took 52 % of a core instead of 25 %). `give_slack` sets the slack of the stack's new audio threads
through ``/proc/<tid>/timerslack_ns`` (needs CAP_SYS_NICE, as real-time scheduling does).

All but one: the call's audio source (``aumem_src``) is the transmit clock, and it stays without slack. It hands
a frame to the stack's transmit queue every 20 ms; the transmit thread sends a frame from that queue on its own
20 ms schedule, set by the source's first frame and polled every 4 ms. Given slack up to a second into the call,
the source's wake-ups moved later than the sends and the queue held a frame more for the rest of the call: the
agent's reply reached the wire 20 ms later (bench-v2v with a packet capture: first reply audio handed over →
first voiced RTP packet, p50 39 ms, at least 24, against 17 ms with the source left precise). The source wakes
once per frame, so slack saved little there; the 4 ms polls of the transmit thread are where it counts.
"""

from __future__ import annotations

import os

AUDIO_THREADS = ("aumem", "Audio")  # the stack's per-call source/player ("aumem…") and transmit ("Audio TX")
CLOCK_THREADS = ("aumem_src",)  # the transmit clock: left without slack


def give_slack(seen: set[int], slack_ns: int) -> int:
    """Set ``slack_ns`` on this process's audio threads not in ``seen`` (added to it); returns how many were
    set. Blocking /proc reads: call from a worker thread."""
    done = 0
    tids = {int(t) for t in os.listdir("/proc/self/task")}
    seen &= tids  # threads that ended: their ids may come back
    for tid in tids - seen:
        try:
            with open(f"/proc/self/task/{tid}/comm") as fh:
                comm = fh.read().strip()
        except OSError:
            continue
        seen.add(tid)  # looked at once: a refused write (no CAP_SYS_NICE) is not retried every second
        if not comm.startswith(AUDIO_THREADS) or comm.startswith(CLOCK_THREADS):
            continue  # not ours to change, or the transmit clock: it stays what it is
        try:
            with open(f"/proc/{tid}/timerslack_ns", "w") as fh:  # (not under task/: the tid is its own /proc entry)
                fh.write(str(slack_ns))
        except OSError:
            continue  # gone meanwhile, or no CAP_SYS_NICE: it runs without slack
        done += 1
    return done
