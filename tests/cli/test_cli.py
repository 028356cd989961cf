"""The `switchboard` command as a user runs it: real processes, real PostgreSQL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.support.sip_peers import free_port

EXE = [sys.executable, "-m", "switchboard.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWITCHBOARD_", "DATABASE_URL"))}
    env.update(extra)
    return env




def test_api_key_create_prints_the_key_alone_on_the_last_line(database_url, tmp_path):
    env = _env(DATABASE_URL=database_url, SWITCHBOARD_DATA_DIR=str(tmp_path))
    out = subprocess.run([*EXE, "api-key", "create", "--org", "cli-org"], env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    key = out.strip().splitlines()[-1]
    assert re.fullmatch(r"sb_[A-Za-z0-9_\-]{40,}", key), out
    again = subprocess.run([*EXE, "api-key", "create", "--org", "cli-org", "--name", "second"], env=env,
                           capture_output=True, text=True, timeout=60, check=True).stdout
    assert "created" not in again.splitlines()[0] and again.strip().splitlines()[-1] != key

    migrate = subprocess.run([*EXE, "migrate"], env=env, capture_output=True, text=True, timeout=60, check=True)
    assert "up to date" in migrate.stdout


def test_bad_configuration_is_a_clear_error(tmp_path):
    proc = subprocess.run([*EXE, "migrate"], env=_env(SWITCHBOARD_API_PORT="eighty"), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0 and "SWITCHBOARD_API_PORT must be an integer" in proc.stderr


@pytest.mark.slow
def test_serve_on_embedded_defaults_first_start_then_restart(tmp_path: Path):
    """No DATABASE_URL: embedded PostgreSQL under the data dir; the demo key is printed once."""
    data = Path("/tmp") / f"sb-cli-{os.getpid()}"  # short path: PostgreSQL's unix socket lives in it
    port = free_port()
    rtp = free_port(100)
    env = _env(SWITCHBOARD_DATA_DIR=str(data), SWITCHBOARD_API_HOST="127.0.0.1", SWITCHBOARD_API_PORT=str(port),
               SWITCHBOARD_SIP_HOST="127.0.0.1", SWITCHBOARD_SIP_PORT=str(free_port()),  # UDP and TCP free
               SWITCHBOARD_RTP_PORT_MIN=str(rtp), SWITCHBOARD_RTP_PORT_MAX=str(rtp + 99))
    logs = [data.with_name(data.name + f"-{n}.log") for n in (1, 2)]

    def start() -> tuple[subprocess.Popen, list[str]]:
        log = logs[0] if not logs[0].exists() else logs[1]
        proc = subprocess.Popen([*EXE, "serve"], env=env, stdout=subprocess.PIPE, stderr=log.open("w"), text=True)
        lines: list[str] = []
        for line in proc.stdout:  # the banner ends with its "Press Ctrl+C" line
            lines.append(line.rstrip())
            if line.startswith("Press Ctrl+C"):
                break
        return proc, lines

    proc = None
    try:
        proc, lines = start()
        text = "\n".join(lines)
        assert "Switchboard is running." in text, text + logs[0].read_text()[-3000:]
        key = re.search(r"\b(sb_[A-Za-z0-9_\-]{40,})", text)
        assert key, text
        health = requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=10).json()
        assert health["data"]["checks"]["database"] == "up"
        agents = requests.get(f"http://127.0.0.1:{port}/api/v1/agents",
                              headers={"Authorization": f"Bearer {key[1]}"}, timeout=10).json()
        assert [a["name"] for a in agents["data"]] == ["Switchboard demo"]
        assert requests.get(f"http://127.0.0.1:{port}/docs", timeout=10).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0

        proc, lines = start()
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[0]
        assert proc.returncode == 0
        assert not re.search(r"sb_[A-Za-z0-9_\-]{40,}", "\n".join(lines) + rest)  # shown once only
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        subprocess.run(["rm", "-rf", str(data), *map(str, logs)], check=False)
