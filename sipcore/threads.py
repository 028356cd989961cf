"""Timer slack for the stack's per-call audio threads while its SIP thread runs real-time (Linux).

A thread switched to a real-time policy loses its timer slack, and the threads it starts inherit none: with
the SIP thread in ``SCHED_RR`` each call's audio threads (started from it, normal by reset-on-fork) would poll
their 4 ms clock with no slack, about twice the wake-ups (bench-sip, 81 talking calls: the per-call audio
threads took 52 % of a core instead of 25 %). `give_slack` sets the slack of the stack's new audio threads
through ``/proc/<tid>/timerslack_ns`` (needs CAP_SYS_NICE, as real-time scheduling does).
"""

from __future__ import annotations

import os

AUDIO_THREADS = ("aumem", "Audio")  # the stack's per-call source/player ("aumem…") and transmit ("Audio TX")


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
        if not comm.startswith(AUDIO_THREADS):
            seen.add(tid)  # not ours to change, and it stays what it is
            continue
        seen.add(tid)  # tried once: a refused write (no CAP_SYS_NICE) is not retried every second
        try:
            with open(f"/proc/{tid}/timerslack_ns", "w") as fh:  # (not under task/: the tid is its own /proc entry)
                fh.write(str(slack_ns))
        except OSError:
            continue  # gone meanwhile, or no CAP_SYS_NICE: it runs without slack
        done += 1
    return done
