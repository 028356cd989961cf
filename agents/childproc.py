"""What every helper process of the server does first: die with its parent, and give way to real-time audio.

Local speech-to-text, synthesis and embedding workers run in child processes. They must never outlive the
server (a ``kill -9`` of the server used to leave a ~500 MB embedding worker behind), and they must never
take the CPU or the disk from the media tick and the SIP engine's audio threads. ``harden(parent_pid)`` is
the first call of every such child: the kernel kills it when its parent dies (``PR_SET_PDEATHSIG``), and it
runs at a lower CPU priority (nice) and in the idle I/O class.

``PR_SET_PDEATHSIG`` fires when the *thread* that started the child exits: start children from the event
loop's thread (as ``multiprocessing`` ``spawn`` does when called there), not from a short-lived executor thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
import shutil
import signal
from collections.abc import Iterator, Sequence
from typing import Any

PR_SET_PDEATHSIG = 1
HELPER_NICE = 10  # the server itself runs at 0: the media tick wins every contest for a core
_IOPRIO_WHO_PROCESS = 1
_IOPRIO_CLASS_IDLE = 3
_IOPRIO_CLASS_SHIFT = 13
_SYS_IOPRIO_SET = {"x86_64": 251, "aarch64": 30}


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel for SIGKILL when the parent goes; exit now if it is already gone."""
    _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(0)


def lower_priority(nice: int = HELPER_NICE) -> None:
    """The idle CPU scheduling class (``SCHED_IDLE``: the process runs only on CPU time nothing else on the
    box wants, so the media tick and the engine's audio threads always preempt it — under load its work waits
    or is shed, the audio does not), a nice value for where that class is unavailable, and the idle I/O
    class (best effort: never fatal; lowering one's own priority needs no privilege)."""
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, max(os.getpriority(os.PRIO_PROCESS, 0), nice))
    number = _SYS_IOPRIO_SET.get(platform.machine())
    if number is not None:
        _libc().syscall(number, _IOPRIO_WHO_PROCESS, 0, _IOPRIO_CLASS_IDLE << _IOPRIO_CLASS_SHIFT)


def leave_interrupts_to_parent() -> None:
    """Ignore SIGINT: a Ctrl-C in a terminal reaches the whole foreground process group, helpers
    included; the server then stops its helpers itself, in order (no KeyboardInterrupt tracebacks from
    children in the middle of a drain). SIGTERM and SIGKILL still end a helper. A SIGINT that arrived
    while the child was starting (blocked by `interrupts_blocked` in the parent) is discarded here."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@contextlib.contextmanager
def interrupts_blocked() -> Iterator[None]:
    """Start helper processes inside this: SIGINT is blocked in the calling thread, and a child inherits
    that mask through fork and exec, so a Ctrl-C during its start-up (a spawned Python imports for a
    second or more before `harden` runs) stays pending until `harden` discards it instead of killing
    the child mid-import with a traceback. The server itself still gets the signal (another thread,
    or this one when the block ends)."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def harden(parent_pid: int, *, nice: int = HELPER_NICE) -> None:
    """The first call in every helper child process."""
    die_with_parent(parent_pid)
    leave_interrupts_to_parent()
    lower_priority(nice)


@functools.cache
def _setpriv() -> str | None:
    """util-linux's setpriv, looked up once: a walk of PATH on every synthesis start showed in the event loop's
    profile (bench-sip)."""
    return shutil.which("setpriv")


def tied_command(argv: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """How to start a program on a call's real-time path (espeak-ng: a caller waits for its first audio):
    ``(argv, kwargs)`` for ``subprocess.Popen(argv, **kwargs)`` (through `agents.spawn`: uvloop's
    ``create_subprocess_exec`` forks and rejects ``process_group``). The program dies with the
    server (``setpriv --pdeathsig KILL``, util-linux) and a terminal's Ctrl-C does not reach it (its own
    process group: the server drains and stops it), but it keeps the server's CPU and I/O priority
    (measured under load, load average ~12 on 2 cores: 8 sentences' first audio 1.2–11.9 s at nice 10).

    No ``preexec_fn``: Python must ``fork()`` to run one, and forking the server (hundreds of MB, a few
    hundred threads) took 25 ms per start here, stalling the event loop and every thread's page faults
    while the page tables were copied; without one it uses ``vfork()`` (1.5 ms)."""
    setpriv = _setpriv()
    head = [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
    return [*head, *argv], {"process_group": 0}

