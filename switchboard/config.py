"""Settings from environment variables (documented in the README)."""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _bounded(env: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    value = _int(env, name, default)
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return value


_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")


def _switch(env: dict[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in _ON:
        return True
    if raw in _OFF:
        return False
    raise ValueError(f"{name} must be on or off, got {raw!r}")


RealtimeMode = Literal["auto", "on", "off"]


def _realtime(env: dict[str, str], name: str, default: RealtimeMode) -> RealtimeMode:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw == "auto":
        return "auto"
    if raw in _ON:
        return "on"
    if raw in _OFF:
        return "off"
    raise ValueError(f"{name} must be auto, on or off, got {raw!r}")


def _one_line(env: dict[str, str], name: str, default: str) -> str:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if any(c in raw for c in "\r\n") or len(raw) > 100:
        raise ValueError(f"{name} must be one line of at most 100 characters")
    return raw


def default_data_dir(env: dict[str, str]) -> Path:
    """Where the server keeps its data when SWITCHBOARD_DATA_DIR is unset: one fixed place per user
    (``$XDG_DATA_HOME/switchboard``, else ``~/.local/share/switchboard``), the same from every folder, so
    that ``switchboard api-key create`` run anywhere finds the database ``make run`` made."""
    xdg = env.get("XDG_DATA_HOME") or ""
    if os.path.isabs(xdg):  # the XDG spec: a relative value is invalid and ignored
        return Path(xdg) / "switchboard"
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return home / ".local" / "share" / "switchboard"


def _range(env: dict[str, str], name: str, default: tuple[int, int]) -> tuple[int, int]:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    lo, sep, hi = raw.partition("-")
    try:
        value = (int(lo), int(hi)) if sep else (int(lo), int(lo))
    except ValueError as exc:
        raise ValueError(f"{name} must be MIN-MAX in milliseconds (e.g. 10-300), got {raw!r}") from exc
    if not 0 <= value[0] <= value[1] <= 2000:
        raise ValueError(f"{name} must be MIN-MAX with 0 ≤ MIN ≤ MAX ≤ 2000, got {raw!r}")
    return value


def _ip(env: dict[str, str], name: str) -> str | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError as exc:
        raise ValueError(f"{name} must be an IP address (e.g. 203.0.113.10), got {raw!r}") from exc


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str | None
    api_host: str = "0.0.0.0"
    api_port: int = 8080
    public_url: str | None = None
    sip_host: str = "0.0.0.0"
    sip_port: int = 5060
    secret_key: str = ""
    rate_limit_per_minute: int = 1000
    max_body_bytes: int = 1024 * 1024
    media_timeout_seconds: int = 30
    drain_timeout_seconds: int = 60
    worker_id: str = ""
    rtp_port_min: int = 16000
    rtp_port_max: int = 19999
    max_calls: int = 200
    answer_timeout_seconds: int = 60
    allow_private_urls: bool = False
    setup_timeout_seconds: int = 32
    recording_quota_mb: int = 10240
    recording_retention_days: int = 0
    sip_user_agent: str = "Switchboard"
    public_ip: str | None = None
    stall_log_ms: int = 100  # the event loop not turning this long is logged with its stack
    stall_dump_seconds: int = 0  # a diagnostic: every thread's stack to stderr after this long (0: off)
    jitter_buffer_ms: tuple[int, int] = (10, 300)  # adaptive receive jitter buffer, min-max
    sip_timer_slack_us: int = 4000  # the SIP engine's threads (per-call audio threads batch their wake-ups)
    # the event loop and the SIP engine's thread in SCHED_RR: "auto" when permitted (SWITCHBOARD_REALTIME's
    # default), "on" (and say so when refused), "off"; code that builds Settings itself gets "off"
    realtime: RealtimeMode = "off"
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.api_host in ("0.0.0.0", "::", "") else self.api_host
        return f"http://{host}:{self.api_port}"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        raw = env.get("SWITCHBOARD_DATA_DIR")
        data_dir = (Path(raw).expanduser() if raw else default_data_dir(env)).resolve()
        return cls(
            data_dir=data_dir,
            database_url=env.get("DATABASE_URL") or None,
            api_host=env.get("SWITCHBOARD_API_HOST") or "0.0.0.0",
            api_port=_int(env, "SWITCHBOARD_API_PORT", 8080),
            public_url=env.get("SWITCHBOARD_PUBLIC_URL") or None,
            sip_host=env.get("SWITCHBOARD_SIP_HOST") or "0.0.0.0",
            sip_port=_int(env, "SWITCHBOARD_SIP_PORT", 5060),
            secret_key=env.get("SWITCHBOARD_SECRET_KEY") or "",
            rate_limit_per_minute=_int(env, "SWITCHBOARD_RATE_LIMIT", 1000),
            media_timeout_seconds=_int(env, "SWITCHBOARD_MEDIA_TIMEOUT", 30),
            drain_timeout_seconds=_int(env, "SWITCHBOARD_DRAIN_TIMEOUT", 60),
            worker_id=env.get("SWITCHBOARD_WORKER_ID") or "",
            rtp_port_min=_int(env, "SWITCHBOARD_RTP_PORT_MIN", 16000),
            rtp_port_max=_int(env, "SWITCHBOARD_RTP_PORT_MAX", 19999),
            max_calls=_int(env, "SWITCHBOARD_MAX_CALLS", 200),
            answer_timeout_seconds=_int(env, "SWITCHBOARD_ANSWER_TIMEOUT", 60),
            setup_timeout_seconds=_int(env, "SWITCHBOARD_SETUP_TIMEOUT", 32),
            allow_private_urls=env.get("SWITCHBOARD_ALLOW_PRIVATE_URLS", "").strip().lower() in _ON,
            recording_quota_mb=_int(env, "SWITCHBOARD_RECORDING_QUOTA_MB", 10240),
            recording_retention_days=_int(env, "SWITCHBOARD_RECORDING_RETENTION_DAYS", 0),
            sip_user_agent=_one_line(env, "SWITCHBOARD_SIP_USER_AGENT", "Switchboard"),
            public_ip=_ip(env, "SWITCHBOARD_PUBLIC_IP"),
            stall_log_ms=_int(env, "SWITCHBOARD_STALL_LOG_MS", 100),
            stall_dump_seconds=_int(env, "SWITCHBOARD_STALL_DUMP_SECONDS", 0),
            jitter_buffer_ms=_range(env, "SWITCHBOARD_JITTER_BUFFER_MS", (10, 300)),
            sip_timer_slack_us=_bounded(env, "SWITCHBOARD_SIP_TIMER_SLACK_US", 4000, 0, 20000),
            realtime=_realtime(env, "SWITCHBOARD_REALTIME", "auto"),
        )

    @property
    def worker(self) -> str:
        """This worker's stable identity (survives restarts, so it can close the calls it left open)."""
        return self.worker_id or f"{socket.gethostname()}:{self.sip_port}"

    def resolved_secret_key(self) -> str:
        """The secret for encrypting stored secrets: the env value, else one generated once into the
        data directory (mode 0600) and reused on every later start."""
        if self.secret_key:
            return self.secret_key
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / "secret.key"
        if path.exists():
            return path.read_text().strip()
        key = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
        return key
