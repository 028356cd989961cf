"""A short-lived program's pipes are closed once each: a second close of the same number closes whatever
descriptor another thread (the SIP stack's sockets, a recording's file) opened in between."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

SCRIPT = r"""
import asyncio, os, sys
from agents.spawn import Child

async def main():
    for _ in range(3):
        child = await Child.start(["cat"], b"hello")
        assert await child.stdout.read() == b"hello"
        await child.stderr.read()
        await child.wait()
        await asyncio.sleep(0.05)  # the transports' close callbacks run
    os.write(2, b"DONE\n")

if sys.argv[1] == "uvloop":
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
"""


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_programs_pipes_are_closed_once_each(tmp_path, loop: str) -> None:
    strace = shutil.which("strace")
    assert strace, "strace is a test dependency (scripts/install-system-deps.sh --test)"
    script, trace = tmp_path / "spawn.py", tmp_path / "trace"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = subprocess.run([strace, "-e", "trace=close", "-o", str(trace), sys.executable, str(script), loop],
                          env=env, capture_output=True, text=True, timeout=60)
    assert "DONE" in done.stderr, done.stderr
    closes = re.findall(r"close\((\d+)\)\s+= (-?\d+)(?: (\w+))?", trace.read_text())
    assert len(closes) > 6  # the trace saw the spawns
    twice = [fd for fd, rc, err in closes if rc == "-1" and err == "EBADF"]
    assert twice == [], f"descriptors closed a second time: {twice}"
