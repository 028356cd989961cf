"""Real-time CPU scheduling for the threads that carry audio (Linux ``SCHED_RR``).

On a loaded box the media tick's thread (the event loop) spent half of every late tick runnable but waiting
for a core (bench-sip, 80 talking calls: 47-55 % of the late ticks' time), behind the engine's per-call audio
threads, the batched VAD, recorders and the database, all at the same priority; nice values barely move
that (the loop at nice -5 or the engine at +5: no difference beyond run-to-run noise). ``SCHED_RR`` at the
lowest real-time priority puts the loop, and the SIP engine's thread that receives every call's RTP, ahead
of every normal thread, like FreeSWITCH's ``-rp`` and Asterisk's ``-p``: the work itself is unchanged, it
only runs first. The loop alone was not enough: its ticks ran on time, but the engine then handed frames
over late (bench-sip: 97.1 % of frames on time).

Both are switched with ``SCHED_RESET_ON_FORK``: the threads and processes they start (executors, the VAD
thread, speech helpers, espeak-ng, each call's audio threads) begin as normal threads. It needs
``CAP_SYS_NICE`` or an ``RLIMIT_RTPRIO`` of at least the priority (``ulimit -r``; Docker: ``--cap-add
SYS_NICE`` or ``--ulimit rtprio=1``); without either the worker runs with normal scheduling and says so.
The kernel still keeps 5 % of every second for normal threads (``sched_rt_runtime_us``), and the loop never
blocks by the rules of the house, so a real-time loop cannot lock a core up.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

PRIORITY = 1  # the lowest real-time priority: ahead of every normal thread, behind anything the box deems urgent
POLICY_NAMES = {0: "SCHED_OTHER", 1: "SCHED_FIFO", 2: "SCHED_RR", 3: "SCHED_BATCH", 5: "SCHED_IDLE"}


@dataclass(frozen=True)
class ThreadPolicy:
    policy: int
    priority: int


def current() -> ThreadPolicy:
    """The calling thread's scheduling policy (without the reset-on-fork flag) and priority."""
    return ThreadPolicy(os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK, os.sched_getparam(0).sched_priority)


def make_realtime(priority: int = PRIORITY) -> ThreadPolicy:
    """Put the calling thread in ``SCHED_RR`` at ``priority`` (what it starts stays normal); returns the policy
    it had, for `restore`. Raises PermissionError without CAP_SYS_NICE or a high enough RLIMIT_RTPRIO."""
    before = current()
    os.sched_setscheduler(0, os.SCHED_RR | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
    return before


def permitted(priority: int = PRIORITY) -> bool:
    """Whether this process may run a thread in ``SCHED_RR`` at ``priority``: tried on a short-lived thread of its
    own (capabilities, RLIMIT_RTPRIO and a container's real-time budget all answer at once)."""
    result: list[bool] = []

    def probe() -> None:
        try:
            make_realtime(priority)
            result.append(True)
        except PermissionError:
            result.append(False)

    thread = threading.Thread(target=probe, name="rt-probe")
    thread.start()
    thread.join()
    return result[0]


def restore(before: ThreadPolicy) -> None:
    """The calling thread's policy back to what `make_realtime` found."""
    os.sched_setscheduler(0, before.policy, os.sched_param(before.priority))


def thread_policies(pid: int | str = "self") -> dict[int, tuple[str, str]]:
    """Every thread of a process: tid → (name, policy name), from /proc (policy: field 41 of stat)."""
    out: dict[int, tuple[str, str]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended meanwhile
        name = stat[stat.index("(") + 1: stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(task.name)] = (name, POLICY_NAMES.get(int(fields[38]), fields[38]))
    return out
