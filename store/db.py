"""The asyncpg pool, and the embedded PostgreSQL (pgserver) used when no DATABASE_URL is given."""

from __future__ import annotations

import json
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

_embedded: dict[Path, Any] = {}


class NoDatabase(RuntimeError):
    """The embedded database does not exist and the caller must not create it."""


def embedded_database_exists(data_dir: Path) -> bool:
    return (data_dir / "postgres" / "PG_VERSION").exists()


def ensure_runtime_dir() -> Path:
    """A private runtime directory in ``XDG_RUNTIME_DIR`` (pgserver keeps its lock file there, and the
    PostgreSQL socket when the data directory is too deep for a unix socket path).

    pgserver asks platformdirs for one when it is imported; with ``XDG_RUNTIME_DIR`` unset or unusable
    (root, containers, ssh sessions) platformdirs warns (``RuntimeDirWarning``) and improvises. Give it a
    short private one instead: the variable when it is valid, else ``<tmp>/switchboard-<uid>`` (0700).
    """
    current = os.environ.get("XDG_RUNTIME_DIR", "")
    if current and _private_dir(Path(current)):
        return Path(current)
    path = Path(tempfile.gettempdir()) / f"switchboard-{os.getuid()}"
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise RuntimeError(f"{path} is not a directory this user owns: remove it, or set XDG_RUNTIME_DIR")
    if info.st_mode & 0o777 != 0o700:
        path.chmod(0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(path)
    return path


def _private_dir(path: Path) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and info.st_mode & 0o777 == 0o700


def embedded_database_url(data_dir: Path, *, create: bool = True) -> str:
    """Start (or join) the embedded PostgreSQL under ``data_dir/postgres`` and return its URL.

    pgserver stops the server when the last process using it exits. A data directory too deep for a unix
    socket path (107 bytes) gets its socket in the runtime directory instead. With ``create=False`` a
    missing database raises `NoDatabase` rather than initialising an empty one. Blocking: call it before
    the event loop starts, or in an executor.
    """
    pgdata = (data_dir / "postgres").resolve()
    if not create and not embedded_database_exists(data_dir.resolve()):
        raise NoDatabase(f"no Switchboard database in {data_dir}")
    ensure_runtime_dir()
    import pgserver  # imported lazily (only the embedded default needs it), after the runtime dir is set

    pgdata.mkdir(parents=True, exist_ok=True)
    if pgdata not in _embedded:
        _forget_dead_handles(pgdata, pgserver.postgres_server.PostgresServer._lock)
        _embedded[pgdata] = pgserver.get_server(pgdata, cleanup_mode="stop")
    return _embedded[pgdata].get_uri()


def _forget_dead_handles(pgdata: Path, lock: Any) -> None:
    """pgserver stops PostgreSQL when the last process in its handle list exits; a process killed with
    kill -9 never leaves that list, and the database would then run on after every later stop. Drop the
    processes that are gone before joining."""
    path = pgdata / ".handle_pids.json"
    with lock:
        try:
            pids = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        alive = [pid for pid in pids if isinstance(pid, int) and _alive(pid)]
        if alive != pids:
            log.info("embedded PostgreSQL: forgetting %d process(es) that died without stopping", len(pids) - len(alive))
            path.write_text(json.dumps(alive))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped) is gone too
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(typ, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a released connection needs beyond asyncpg's own clean-up (which rolls back an open transaction and
    drops listeners): nothing. The default also runs ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET
    ALL`` — a round trip on every release, on the event loop — for session state this code never sets on a pool
    connection (its advisory lock is transaction-level; LISTEN has a connection of its own)."""


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, command_timeout=30, reset=_keep_session
    )
    assert pool is not None
    return pool
