"""End-to-end fixtures: the real `switchboard serve` process on its own database, ports and data dir.

The server runs as a subprocess (``python -m switchboard.cli serve``) exactly as a user starts it; the
tests talk to it only through its HTTP API, its SIP port (with real sipp / baresip / kamailio peers) and,
for what the API does not show, its database. A server is module-scoped where tests can share it; the
durability tests (SIGKILL, SIGTERM) get their own through ``server_factory``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import requests

from tests.support.sip_peers import HOST, free_port

ROOT = Path(__file__).resolve().parents[2]
ENDED = frozenset({"completed", "failed", "no_answer", "busy", "canceled"})
Statuses = set[str] | frozenset[str]
START_TIMEOUT = 90.0
# Short timeouts so the failure tests are fast (no answer, unreachable).
ANSWER_TIMEOUT = 4
SETUP_TIMEOUT = 4


def run_sync(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, even when the calling thread runs an event loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def with_database(dsn: str, name: str) -> str:
    """The same server's DSN with another database name (URL path), query (e.g. a unix socket host) kept."""
    base, sep, query = dsn.partition("?")
    scheme, _, rest = base.partition("://")
    hostpart = rest.split("/", 1)[0]
    return f"{scheme}://{hostpart}/{name}{sep}{query}"


@dataclass
class Database:
    """A fresh, empty database on the test PostgreSQL server (the server under test migrates it)."""

    admin_dsn: str
    name: str = field(default_factory=lambda: f"sb_e2e_{uuid.uuid4().hex[:10]}")

    @property
    def dsn(self) -> str:
        return with_database(self.admin_dsn, self.name)

    def create(self) -> Database:
        async def run() -> None:
            conn = await asyncpg.connect(self.admin_dsn)
            try:
                await conn.execute(f'CREATE DATABASE "{self.name}"')
            finally:
                await conn.close()

        run_sync(run())
        return self

    def drop(self) -> None:
        async def run() -> None:
            conn = await asyncpg.connect(self.admin_dsn)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            finally:
                await conn.close()

        run_sync(run())


class Server:
    """One `switchboard serve` process; can be SIGTERMed, SIGKILLed and restarted on the same state."""

    def __init__(self, database: Database, *, extra_env: dict[str, str] | None = None,
                 sip_host: str | None = HOST) -> None:
        self.database = database
        self.sip_host = sip_host  # None: SWITCHBOARD_SIP_HOST is not set at all (the default listen)
        self.data_dir = Path(tempfile.mkdtemp(prefix="sbe2e-", dir="/tmp"))  # short: see README
        self.api_port = free_port()
        self.sip_port = free_port()
        self.rtp_min = free_port(200)
        self.worker_id = f"e2e-{uuid.uuid4().hex[:8]}"
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.api_key: str | None = None
        self.starts = 0
        self._session = requests.Session()

    # -- process ---------------------------------------------------------------------------------------
    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.api_port}/api/v1"

    @property
    def demo_uri(self) -> str:
        return f"sip:demo@{HOST}:{self.sip_port}"

    @property
    def sip_target(self) -> str:
        return f"{HOST}:{self.sip_port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        env.update({
            "DATABASE_URL": self.database.dsn,
            "SWITCHBOARD_DATA_DIR": str(self.data_dir),
            "SWITCHBOARD_API_HOST": HOST,
            "SWITCHBOARD_API_PORT": str(self.api_port),
            **({"SWITCHBOARD_SIP_HOST": self.sip_host} if self.sip_host is not None else {}),
            "SWITCHBOARD_SIP_PORT": str(self.sip_port),
            "SWITCHBOARD_RTP_PORT_MIN": str(self.rtp_min),
            "SWITCHBOARD_RTP_PORT_MAX": str(self.rtp_min + 199),
            "SWITCHBOARD_WORKER_ID": self.worker_id,
            "SWITCHBOARD_ANSWER_TIMEOUT": str(ANSWER_TIMEOUT),
            "SWITCHBOARD_SETUP_TIMEOUT": str(SETUP_TIMEOUT),
            "SWITCHBOARD_RATE_LIMIT": "100000",  # the tests poll
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        })
        return env

    def start(self) -> Server:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._reap_group()  # a restart after kill(): no orphan of the previous run stays around
        self.starts += 1
        out = open(self.data_dir / f"stdout-{self.starts}.log", "wb")  # noqa: SIM115 - owned by the child
        err = open(self.data_dir / f"stderr-{self.starts}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "switchboard.cli", "serve"], cwd=ROOT, env=self.env(),
            stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
        )
        out.close()
        err.close()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            banner = self.stdout()
            if "Press Ctrl+C" in banner:
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode} before its banner:\n{self.logs()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"server did not print its banner in {START_TIMEOUT:.0f} s:\n{self.logs()}")
            time.sleep(0.1)
        key = re.search(r"^\s+(sb_\S+)\s*$", banner, re.M)
        if key:
            self.api_key = key.group(1)
        assert self.api_key, f"no demo API key in the first banner:\n{banner}"
        assert self.demo_uri in banner, banner
        self._wait_background_work()
        return self

    def _wait_background_work(self) -> None:
        """A first start ingests the demo knowledge base in the background (loading an embedding model:
        seconds of CPU on a 2-core machine). Tests measure real-time audio, so they start once its sources
        are ingested."""
        query = "SELECT count(*) FROM knowledge_sources WHERE status IN ('pending', 'in_progress')"

        async def unfinished() -> int:
            conn = await asyncpg.connect(self.database.dsn)
            try:
                return await conn.fetchval(query)
            except asyncpg.UndefinedTableError:
                return 0
            finally:
                await conn.close()

        deadline = time.monotonic() + START_TIMEOUT
        while run_sync(unfinished()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"background ingestion did not finish in {START_TIMEOUT:.0f} s:\n{self.logs()}")
            time.sleep(0.2)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL the server process, as `kill -9 PID` does (its helper processes are left to notice)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def _reap_group(self) -> None:
        """Whatever is left in the server's process group (it leads its own: start_new_session)."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def wait_exit(self, timeout: float) -> int:
        """The server's exit code; if it has not exited in ``timeout`` seconds, a failure that shows its log
        and where every thread of it is (the server dumps its stacks on SIGUSR1)."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(2)
            raise AssertionError(f"the server did not exit in {timeout:.0f} s:\n{self.logs(tail=400)}") from None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()

    def cleanup(self) -> None:
        self.stop()
        self._reap_group()
        self._session.close()
        if not os.environ.get("SB_E2E_KEEP"):
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def stdout(self) -> str:
        path = self.data_dir / f"stdout-{self.starts}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self, tail: int = 60) -> str:
        text = ""
        for n in range(1, self.starts + 1):
            path = self.data_dir / f"stderr-{n}.log"
            if path.exists():
                text += f"--- server run {n} ---\n" + path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-tail:])

    # -- HTTP API --------------------------------------------------------------------------------------
    def api_sync(self, method: str, path: str, json: Any = None, *, key: str | None = None,
                 params: dict[str, Any] | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {key or self.api_key}"}
        r = self._session.request(method, self.base + path, json=json, params=params, headers=headers, timeout=15)
        try:
            body = r.json()
        except ValueError:
            body = r.text
        return r.status_code, body

    async def api(self, method: str, path: str, json: Any = None, **kw: Any) -> tuple[int, Any]:
        """(status, body) of one API request; off the event loop (peers' pipes keep being read)."""
        return await asyncio.to_thread(self.api_sync, method, path, json, **kw)

    async def ok(self, method: str, path: str, json: Any = None, *, status: int | tuple[int, ...] = (200, 201),
                 **kw: Any) -> Any:
        """The ``data`` of a request that must succeed."""
        code, body = await self.api(method, path, json, **kw)
        wanted = (status,) if isinstance(status, int) else status
        assert code in wanted, f"{method} {path} → {code}: {body}"
        return body["data"] if isinstance(body, dict) and "data" in body else body

    async def call(self, call_id: Any) -> dict[str, Any]:
        return await self.ok("GET", f"/calls/{call_id}")

    async def wait_call(self, call_id: Any, until: Statuses = ENDED, timeout: float = 20.0) -> dict[str, Any]:  # noqa: ASYNC109 - a polling deadline
        """Poll GET /calls/{id} until its status is in ``until``."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            last = await self.call(call_id)
            if last["status"] in until:
                return last
            await asyncio.sleep(0.1)
        raise AssertionError(f"call {call_id} never reached {sorted(until)} in {timeout} s; last: {last}\n"
                             f"{self.logs()}")

    async def wait_new_call(self, seen: set[str], match: Callable[[dict[str, Any]], bool] = lambda c: True,
                            timeout: float = 15.0, **filters: Any) -> dict[str, Any]:  # noqa: ASYNC109
        """Poll GET /calls (newest first) for a call not in ``seen`` that ``match``es."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for c in await self.ok("GET", "/calls", params={"limit": 50, **filters}):
                if c["call_id"] not in seen and match(c):
                    return c
            await asyncio.sleep(0.1)
        raise AssertionError(f"no new call matching {filters} in {timeout} s\n{self.logs()}")

    async def call_ids(self) -> set[str]:
        return {c["call_id"] for c in await self.ok("GET", "/calls", params={"limit": 1000})}

    # -- database (what the API does not show) ---------------------------------------------------------
    async def sql(self, query: str, *args: Any) -> list[dict[str, Any]]:
        conn = await asyncpg.connect(self.database.dsn)
        try:
            for typ in ("json", "jsonb"):
                await conn.set_type_codec(typ, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
            return [dict(r) for r in await conn.fetch(query, *args)]
        finally:
            await conn.close()

    async def row(self, call_id: Any) -> dict[str, Any]:
        rows = await self.sql("SELECT * FROM calls WHERE id = $1", uuid.UUID(str(call_id)))
        assert rows, f"no calls row {call_id}"
        return rows[0]

    async def events(self, call_id: Any) -> list[dict[str, Any]]:
        return await self.sql("SELECT * FROM call_events WHERE call_id = $1 ORDER BY id", uuid.UUID(str(call_id)))

    async def wait_row(self, call_id: Any, until: Statuses = ENDED, timeout: float = 20.0) -> dict[str, Any]:  # noqa: ASYNC109 - a polling deadline
        """Poll the calls row itself (works while the API is down or gone)."""
        deadline = time.monotonic() + timeout
        row: dict[str, Any] = {}
        while time.monotonic() < deadline:
            row = await self.row(call_id)
            if row["status"] in until:
                return row
            await asyncio.sleep(0.1)
        raise AssertionError(f"calls row {call_id} never reached {sorted(until)}; last {row}\n{self.logs()}")

    async def wait_event(self, call_id: Any, kind: str, timeout: float = 10.0) -> list[dict[str, Any]]:  # noqa: ASYNC109 - a polling deadline
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in await self.events(call_id) if e["kind"] == kind]
            if found:
                return found
            await asyncio.sleep(0.1)
        raise AssertionError(f"no {kind!r} event for call {call_id} in {timeout} s\n{self.logs()}")


@pytest.fixture(scope="session")
def e2e_admin_dsn(database_url: str) -> str:
    """A DSN on the test PostgreSQL server from which databases are created and dropped."""
    return database_url


@contextlib.contextmanager
def served(admin_dsn: str, **kw: Any) -> Iterator[Server]:
    """A running server (``Server(db, **kw)``) on a fresh database of its own, both gone afterwards."""
    db = Database(admin_dsn).create()
    srv = Server(db, **kw)
    try:
        srv.start()
        yield srv
    finally:
        srv.cleanup()
        db.drop()


@pytest.fixture(scope="module")
def server(e2e_admin_dsn: str) -> Iterator[Server]:
    """A running server shared by a module's tests, on a fresh database of its own."""
    with served(e2e_admin_dsn) as srv:
        yield srv


@pytest.fixture
def server_factory(e2e_admin_dsn: str) -> Iterator[Callable[..., Server]]:
    """Servers a test may kill: each on a fresh database, all cleaned up after the test."""
    made: list[tuple[Server, Database]] = []

    def make(**kw: Any) -> Server:
        db = Database(e2e_admin_dsn).create()
        srv = Server(db, **kw)
        made.append((srv, db))
        return srv.start()

    yield make
    for srv, db in made:
        with contextlib.suppress(Exception):
            srv.cleanup()
        db.drop()


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short scratch directory for peers' files (sipp scenarios, WAVs, baresip config and dumps)."""
    path = Path(tempfile.mkdtemp(prefix="sbpeer-", dir="/tmp"))
    yield path
    if not os.environ.get("SB_E2E_KEEP"):
        shutil.rmtree(path, ignore_errors=True)
