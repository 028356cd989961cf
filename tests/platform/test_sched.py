"""Real-time scheduling of the audio threads (switchboard.platform.sched), on this machine's kernel."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

from switchboard.platform import sched


def in_thread(fn: Any) -> Any:
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def test_the_thread_runs_round_robin_and_what_it_starts_does_not() -> None:
    def body() -> tuple[str, str, str, str]:
        tid = threading.get_native_id()
        before = sched.make_realtime()
        mine = sched.thread_policies()[tid][1]
        child: list[int] = []
        t = threading.Thread(target=lambda: child.append(threading.get_native_id()) or sched_wait.wait(5))
        t.start()
        while not child:
            pass
        started = sched.thread_policies()[child[0]][1]
        sched_wait.set()
        t.join()
        helper = subprocess.run([sys.executable, "-c", "import os; print(os.sched_getscheduler(0))"],
                                capture_output=True, text=True, check=True).stdout.strip()
        sched.restore(before)
        return mine, started, sched.POLICY_NAMES[int(helper)], sched.thread_policies()[tid][1]

    sched_wait = threading.Event()
    mine, started, helper, after = in_thread(body)
    assert mine == "SCHED_RR"
    assert started == "SCHED_OTHER" and helper == "SCHED_OTHER"  # threads and processes it starts are normal
    assert after == "SCHED_OTHER"  # restored


def test_without_the_privilege_it_raises_and_changes_nothing() -> None:
    # no CAP_SYS_NICE (dropped from the bounding set before exec) and no real-time budget (RLIMIT_RTPRIO 0)
    code = ("from switchboard.platform import sched\n"
            "print('permitted', sched.permitted())\n"
            "try:\n    sched.make_realtime()\nexcept PermissionError:\n    print('refused', sched.current().policy)\n")
    out = subprocess.run(["prlimit", "--rtprio=0", "setpriv", "--bounding-set=-sys_nice", "--inh-caps=-sys_nice",
                          sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["permitted False", "refused 0"], out


def test_permission_is_probed_without_changing_the_caller() -> None:
    """SWITCHBOARD_REALTIME=auto asks first: here (root) it may, and the asking thread stays as it was."""
    assert sched.permitted() is True
    assert sched.current().policy == 0  # SCHED_OTHER
