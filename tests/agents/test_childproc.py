"""Helper processes die with the server and run below it in priority."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

PARENT = r"""
import multiprocessing as mp, os, sys, time
from agents.childproc import harden

def child(parent):
    harden(parent)
    print(os.getpid(), os.getpriority(os.PRIO_PROCESS, 0), flush=True)
    time.sleep(600)

if __name__ == "__main__":
    p = mp.get_context("spawn").Process(target=child, args=(os.getpid(),), daemon=True)
    p.start()
    time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _program(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline") as f:
        return os.path.basename(f.read().split("\0")[0])


def test_a_helper_child_dies_when_its_parent_is_killed(tmp_path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                              cwd=os.getcwd(), env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        pid_text, nice = parent.stdout.readline().split()  # the child's line: it is up and hardened
        child = int(pid_text)
        assert int(nice) >= 10
        assert os.sched_getscheduler(int(pid_text)) == os.SCHED_IDLE  # runs only on CPU time nothing else wants
        assert _alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the helper outlived a kill -9 of its parent"
    finally:
        parent.kill()


TIED = r"""
import subprocess, sys, time
from agents.childproc import tied_command

argv, spawn = tied_command(["sleep", "600"])
child = subprocess.Popen(argv, **spawn)
print(child.pid, flush=True)
time.sleep(600)
"""


def test_a_tied_program_ignores_ctrl_c_and_dies_with_the_server(tmp_path) -> None:
    script = tmp_path / "tied.py"
    script.write_text(TIED)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                              cwd=os.getcwd(), env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        child = int(parent.stdout.readline())
        assert os.getpriority(os.PRIO_PROCESS, child) == os.getpriority(os.PRIO_PROCESS, parent.pid)
        # a terminal's Ctrl-C goes to the foreground process group: the program is not in the server's
        assert os.getpgid(child) != os.getpgid(parent.pid), "a terminal's Ctrl-C would reach the program"
        deadline = time.monotonic() + 10
        # setpriv has set its death signal and exec'd the program itself (its own argv names "sleep" too: wait
        # for the program's, or a kill -9 can come before setpriv asked for the signal)
        while _program(child) != "sleep" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _program(child) == "sleep"
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the program outlived a kill -9 of the server"
    finally:
        parent.kill()
