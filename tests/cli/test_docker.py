"""The container files agree with each other and with the server's settings. No Docker engine runs on
the test machines: compose.yaml is validated by docker-compose's own parser (`config` needs no engine),
the Dockerfile and .dockerignore are read as text."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib

import yaml

from tests.cli.serve_process import REPO


def _compose() -> dict:
    proc = subprocess.run(["docker-compose", "-f", str(REPO / "compose.yaml"), "config"], cwd=REPO,
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


def _seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smh])", text))


def test_compose_has_a_real_postgresql_and_a_grace_period_covering_the_drain() -> None:
    services = _compose()["services"]
    pg, sb = services["postgres"], services["switchboard"]
    assert pg["image"].startswith("postgres:16")
    assert sb["depends_on"]["postgres"]["condition"] == "service_healthy"
    env = sb["environment"]
    port = pg["ports"][0].split(":")[1]
    assert env["DATABASE_URL"].startswith("postgresql://") and f"@127.0.0.1:{port}/" in env["DATABASE_URL"]
    assert pg["ports"][0].startswith("127.0.0.1:")  # the database is not published beyond loopback
    assert sb["network_mode"] == "host"  # SIP/RTP reach it unchanged, SDP carries the host's addresses
    assert "SWITCHBOARD_PUBLIC_IP" in env
    assert _seconds(sb["stop_grace_period"]) >= int(env["SWITCHBOARD_DRAIN_TIMEOUT"]) + 10
    assert sb["stop_signal"] == "SIGTERM"
    assert (env["SWITCHBOARD_RTP_PORT_MIN"], env["SWITCHBOARD_RTP_PORT_MAX"]) == (16000, 16999)


def test_dockerfile_installs_cpu_torch_and_exposes_what_calls_need() -> None:
    text = (REPO / "Dockerfile").read_text()
    torch = text.index("--index-url \"$TORCH_INDEX\"")
    assert "download.pytorch.org/whl/cpu" in text and torch < text.index("pip install --no-cache-dir /app")
    assert "torch.version.cuda is not None" in text  # the build fails if a CUDA build slipped in
    env = dict(re.findall(r"(SWITCHBOARD_[A-Z_]+)=(\S+)", text))
    expose = re.search(r"^EXPOSE (.+)$", text, re.M).group(1).split()
    assert f"{env['SWITCHBOARD_RTP_PORT_MIN']}-{env['SWITCHBOARD_RTP_PORT_MAX']}/udp" in expose
    assert {"8080/tcp", "5060/udp", "5060/tcp"} <= set(expose)
    # every package pyproject installs is copied into the image
    include = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = set(re.findall(r"^COPY (\w+) /app/\1$", text, re.M))
    assert {p.rstrip("*") for p in include} == copied


def test_dockerignore_keeps_environments_data_and_secrets_out() -> None:
    lines = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", "data", "**/secret.key", ".env"} <= lines


def test_a_public_ip_that_is_not_an_address_is_a_clear_error() -> None:
    from switchboard.config import Settings

    assert Settings.from_env({"SWITCHBOARD_PUBLIC_IP": " 203.0.113.10 "}).public_ip == "203.0.113.10"
    assert Settings.from_env({}).public_ip is None
    proc = subprocess.run([sys.executable, "-m", "switchboard.cli", "migrate"], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "SWITCHBOARD_PUBLIC_IP": "sip.example.com"})
    assert proc.returncode != 0 and "SWITCHBOARD_PUBLIC_IP must be an IP address" in proc.stderr
