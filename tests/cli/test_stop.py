"""Stopping the server: Ctrl-C and SIGTERM stop in phases without tracebacks, and a kill -9 leaves no
helper process (recognisers, embedding process, multiprocessing's resource tracker) and no memory behind."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.cli.serve_process import Served, clean_env, loopback_ports, serve


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state) of a live process, None when gone (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[-1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if fields[0] in ("Z", "X") else (int(fields[1]), fields[0])


def descendants(root: int) -> dict[int, str]:
    """Every live process below ``root``: pid → command line."""
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (st := _stat(int(name))):
            parents[int(name)] = st[0]
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        p = frontier.pop()
        for child, parent in parents.items():
            if parent == p and child not in found:
                try:
                    found[child] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                frontier.append(child)
    return found


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def wait_for_helpers(server: Served, timeout: float = 180) -> dict[int, str]:
    """The helpers start at warm-up: two recognisers, the embedding process, the resource tracker."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = descendants(server.proc.pid)
        spawned = [c for c in kids.values() if "spawn_main" in c]
        if len(spawned) >= 3 and any("resource_tracker" in c for c in kids.values()):
            return kids
        assert server.proc.poll() is None, server.stderr()[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"helpers did not start: {descendants(server.proc.pid)}")


def wait_for_log(server: Served, text: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while text not in server.stderr():
        assert time.monotonic() < deadline and server.proc.poll() is None, server.stderr()[-3000:]
        time.sleep(0.2)


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (alive := [p for p in pids if _stat(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def postmasters(pgdata: Path) -> list[int]:
    out = []
    for pid, cmd in descendants(1).items():
        if cmd.split(" ")[0].endswith("/postgres") and f"-D {pgdata} " in cmd:
            out.append(pid)
    return out


def assert_clean_stop(rc: int, out: str, err: str) -> None:
    text = out + err
    assert rc == 0, err[-3000:]
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text[-5000:]
    assert "leaked" not in text, text[-3000:]  # multiprocessing's resource tracker found nothing to clean
    lines = err.splitlines()
    draining = [n for n, line in enumerate(lines) if "switchboard.server: draining" in line]
    stopped = [n for n, line in enumerate(lines) if line.endswith("switchboard.server: stopped")]
    assert len(draining) == 1 and len(stopped) == 1 and draining[0] < stopped[0], err[-3000:]


@pytest.mark.slow
def test_ctrl_c_sigterm_and_kill_9_leave_nothing_behind(tmp_path: Path) -> None:
    data = Path("/tmp") / f"sbstop-{os.getpid()}"
    shutil.rmtree(data, ignore_errors=True)
    env = clean_env(SWITCHBOARD_DATA_DIR=str(data))  # fresh ports per start: another test may take freed ones
    server: Served | None = None
    try:
        # 1. Ctrl-C in a terminal: SIGINT to the whole foreground process group, helpers included
        server = serve({**env, **loopback_ports()}, tmp_path / "1.log")
        helpers = wait_for_helpers(server)
        assert_clean_stop(*server.stop(signal.SIGINT, group=True))
        assert wait_gone(list(helpers), 10) == []

        # 2. kill -9: every helper dies with the server, the memory they held is released
        server = serve({**env, **loopback_ports()}, tmp_path / "2.log")
        wait_for_log(server, "embedding model ready")
        helpers = wait_for_helpers(server)
        held = rss_kib(list(helpers))
        server.proc.kill()
        server.proc.wait(10)
        left = wait_gone(list(helpers), 10)
        assert left == [], {p: helpers[p] for p in left}
        assert rss_kib(list(helpers)) == 0 and held > 100_000  # the embedding process alone holds ~500 MB
        print(f"\nkill -9: {len(helpers)} helper processes holding {held // 1024} MiB, none left")

        # 3. restart after the crash: one database server, helpers again; SIGTERM stops everything,
        #    the embedded PostgreSQL included (the killed process no longer counts as one of its users)
        server = serve({**env, **loopback_ports()}, tmp_path / "3.log")
        assert len(postmasters(data / "postgres")) == 1
        helpers = wait_for_helpers(server)
        assert_clean_stop(*server.stop(signal.SIGTERM))
        assert wait_gone(list(helpers), 10) == []
        assert wait_gone(postmasters(data / "postgres"), 20) == []
    finally:
        if server is not None:
            server.kill()
        shutil.rmtree(data, ignore_errors=True)
