"""The command line finds the server's data from any folder, and never makes a second, empty database."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from switchboard.config import Settings
from tests.cli.serve_process import EXE, clean_env, loopback_ports, serve

KEY = re.compile(r"sb_[A-Za-z0-9_\-]{40,}")


def test_the_data_directory_is_one_fixed_place_per_user() -> None:
    assert Settings.from_env({"HOME": "/home/ann"}).data_dir == Path("/home/ann/.local/share/switchboard")
    assert Settings.from_env({"HOME": "/home/ann", "XDG_DATA_HOME": "/srv/xdg"}).data_dir == Path(
        "/srv/xdg/switchboard")
    # a relative XDG_DATA_HOME is invalid (XDG spec) and ignored; SWITCHBOARD_DATA_DIR always wins
    assert Settings.from_env({"HOME": "/home/ann", "XDG_DATA_HOME": "rel"}).data_dir == Path(
        "/home/ann/.local/share/switchboard")
    assert Settings.from_env({"HOME": "/home/ann", "SWITCHBOARD_DATA_DIR": "/var/lib/sb"}).data_dir == Path(
        "/var/lib/sb")


def test_a_command_that_would_create_an_empty_database_says_so_and_stops(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    for argv in (["api-key", "create", "--org", "demo"], ["migrate"]):
        proc = subprocess.run([*EXE, *argv], env=clean_env(HOME=str(home)), cwd=tmp_path, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 1, proc
        assert f"no Switchboard database in {home}/.local/share/switchboard" in proc.stderr
        assert "make run" in proc.stderr and "Traceback" not in proc.stderr
        assert not KEY.search(proc.stdout)
    assert not (home / ".local/share/switchboard/postgres").exists()  # nothing was created


@pytest.mark.slow
def test_api_key_create_from_any_folder_acts_on_the_database_make_run_uses(tmp_path: Path) -> None:
    """`make run` serves from the repository; the README's lost-key command runs from elsewhere."""
    home = Path("/tmp") / f"sbh-{os.getpid()}"  # a real-looking home: data lands in ~/.local/share
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir()
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    env = clean_env(HOME=str(home), **loopback_ports())
    server = serve(env, tmp_path / "serve.log", cwd=Path(__file__).resolve().parents[2])
    try:
        proc = subprocess.run([*EXE, "api-key", "create", "--org", "demo"], env=clean_env(HOME=str(home)),
                              cwd=elsewhere, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        key = proc.stdout.strip().splitlines()[-1]
        assert KEY.fullmatch(key), proc.stdout
        assert "created" not in proc.stdout.splitlines()[0]  # the server's demo organization, not a new one
        agents = requests.get(f"{server.api}/agents", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert agents.status_code == 200 and [a["name"] for a in agents.json()["data"]] == ["Switchboard demo"]
        assert (home / ".local/share/switchboard/postgres/PG_VERSION").exists()
        assert not (elsewhere / "data").exists()
        rc, _out, _err = server.stop()
        assert rc == 0
    finally:
        server.kill()
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_a_data_directory_deeper_than_a_unix_socket_path_works(tmp_path: Path) -> None:
    """PostgreSQL's socket path is limited to 107 bytes: a deep data directory still gets a database."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    env = clean_env(SWITCHBOARD_DATA_DIR=str(deep), **loopback_ports())
    assert len(str(deep / "postgres/.s.PGSQL.5432")) > 107
    server = serve(env, tmp_path / "serve.log")
    try:
        assert KEY.search("\n".join(server.banner))
        assert "RuntimeDirWarning" not in server.stderr()
        proc = subprocess.run([*EXE, "api-key", "create", "--org", "demo"], env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        rc, _out, _err = server.stop()
        assert rc == 0
    finally:
        server.kill()


def test_the_jitter_buffer_setting_is_a_range_of_milliseconds() -> None:
    from switchboard.config import Settings

    assert Settings.from_env({"HOME": "/tmp"}).jitter_buffer_ms == (10, 300)
    assert Settings.from_env({"HOME": "/tmp", "SWITCHBOARD_JITTER_BUFFER_MS": "40-200"}).jitter_buffer_ms == (40, 200)
    assert Settings.from_env({"HOME": "/tmp", "SWITCHBOARD_JITTER_BUFFER_MS": "60"}).jitter_buffer_ms == (60, 60)
    for bad in ("abc", "300-10", "-5-10", "10-99999"):
        with pytest.raises(ValueError, match="SWITCHBOARD_JITTER_BUFFER_MS"):
            Settings.from_env({"HOME": "/tmp", "SWITCHBOARD_JITTER_BUFFER_MS": bad})


def test_the_sip_engines_timer_slack_is_bounded_microseconds() -> None:
    from switchboard.config import Settings

    assert Settings.from_env({"HOME": "/tmp"}).sip_timer_slack_us == 4000
    assert Settings.from_env({"HOME": "/tmp", "SWITCHBOARD_SIP_TIMER_SLACK_US": "0"}).sip_timer_slack_us == 0
    for bad in ("abc", "-1", "20001"):
        with pytest.raises(ValueError, match="SWITCHBOARD_SIP_TIMER_SLACK_US"):
            Settings.from_env({"HOME": "/tmp", "SWITCHBOARD_SIP_TIMER_SLACK_US": bad})


def test_realtime_scheduling_is_auto_by_default_and_switchable() -> None:
    from switchboard.config import Settings

    assert Settings.from_env({"HOME": "/tmp"}).realtime == "auto"
    assert Settings.from_env({"HOME": "/tmp", "SWITCHBOARD_REALTIME": " Auto "}).realtime == "auto"
    for on in ("on", "1", "true", "Yes"):
        assert Settings.from_env({"HOME": "/tmp", "SWITCHBOARD_REALTIME": on}).realtime == "on"
    for off in ("off", "0", "false", "No"):
        assert Settings.from_env({"HOME": "/tmp", "SWITCHBOARD_REALTIME": off}).realtime == "off"
    with pytest.raises(ValueError, match="SWITCHBOARD_REALTIME must be auto, on or off"):
        Settings.from_env({"HOME": "/tmp", "SWITCHBOARD_REALTIME": "sometimes"})
