"""`switchboard serve` as a real process, started the way a user starts it (its own session, like a shell
job, so that a Ctrl-C can be sent to its whole process group as a terminal would)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.sip_peers import free_port

EXE = [sys.executable, "-m", "switchboard.cli"]
REPO = Path(__file__).resolve().parents[2]


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without Switchboard settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SWITCHBOARD_", "DATABASE_URL", "XDG_DATA_HOME", "XDG_RUNTIME_DIR"))}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def loopback_ports() -> dict[str, str]:
    """Free API, SIP and RTP ports on loopback."""
    rtp = free_port(40)
    return {"SWITCHBOARD_API_HOST": "127.0.0.1", "SWITCHBOARD_API_PORT": str(free_port()),
            "SWITCHBOARD_SIP_HOST": "127.0.0.1", "SWITCHBOARD_SIP_PORT": str(free_port()),
            "SWITCHBOARD_RTP_PORT_MIN": str(rtp), "SWITCHBOARD_RTP_PORT_MAX": str(rtp + 39)}


@dataclass
class Served:
    proc: subprocess.Popen[str]
    banner: list[str]
    stderr_path: Path
    started_at: float
    banner_seconds: float
    env: dict[str, str] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.env['SWITCHBOARD_API_PORT']}/api/v1"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, *, group: bool = False, timeout: float = 90) -> tuple[int, str, str]:
        """Send ``sig`` (to the whole process group when ``group``, as Ctrl-C in a terminal does) and wait;
        returns (exit status, the rest of stdout, all of stderr)."""
        if group:
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)
        rest = self.proc.communicate(timeout=timeout)[0]
        return self.proc.returncode, rest, self.stderr()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def serve(env: dict[str, str], stderr_path: Path, *, cwd: Path | None = None, timeout: float = 180) -> Served:
    """Start `switchboard serve` and read stdout up to the banner's last line ("Press Ctrl+C")."""
    t0 = time.monotonic()
    proc = subprocess.Popen([*EXE, "serve"], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=stderr_path.open("w"), text=True, start_new_session=True)
    lines: list[str] = []
    deadline = t0 + timeout
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip())
        if line.startswith("Press Ctrl+C") or time.monotonic() > deadline:
            break
    served = Served(proc, lines, stderr_path, t0, time.monotonic() - t0, env)
    if not lines or not lines[-1].startswith("Press Ctrl+C"):
        served.kill()
        raise AssertionError("no banner:\n" + "\n".join(lines) + "\n" + served.stderr()[-4000:])
    return served
