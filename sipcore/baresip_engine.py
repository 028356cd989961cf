"""The baresip-python implementation of :class:`sipcore.engine.Engine`.

The only module (with :mod:`sipcore.baresip_call`) that touches the engine
library; it is imported lazily in :meth:`BaresipEngine.start` so importing
``sipcore`` never loads native code.

Gotchas handled here (LAB.md), each covered by a test in tests/sipcore:
- One Runtime per process: :meth:`start` refuses a second engine.
- The library's default call cap is 2: the cap is always set explicitly
  (``max_calls`` + headroom natively; ``max_calls`` enforced here so that
  over-capacity INVITEs reach :meth:`on_refused` instead of vanishing).
- Listen address and RTP range only travel in ``extra_config_text``;
  ``net_interface`` is pinned to the listen host.
- The Request-URI user must equal the account user, else 404: the built-in
  catch-all account carries ``catchall=yes`` and the application routes.
- The stack cannot see the Request-URI: :attr:`IncomingCall.request_user`
  is the To user. Headers User-Agent/Via/To/From are exposed on the
  incoming event (scanner check; the Via is informational only).
- The stack never reports a request's real source address: the native
  bridge (:mod:`sipcore.native`) records it per Call-ID from libre's SIP
  trace hook, and :attr:`IncomingCall.source_host` is that address.
- Malformed INVITEs (no From tag, no or a non-SIP Contact, a broken
  Record-Route) are answered ``500 Call Error`` by baresip's ua.c, and the
  native call it allocated is never freed (a call slot, sockets, RTP
  ports) — and freeing it later (hangup/reject) corrupts the stack's heap
  and aborts the process. So they must never reach the stack: the native
  bridge puts a request listener in front of the stack's own that answers
  them ``400 Bad Request - <what>``. As a second line, a native call that
  has no owner after ``orphan_grace`` seconds is counted (``EngineStats``)
  and logged; it is hung up only when ``reap_orphans`` is enabled.
- With ``net_interface`` unset the stack skips loopback: on a wildcard
  listen the bridge adds 127.0.0.1 (inbound and outbound to loopback work).
- libre watches at most 1,024 descriptors and the cap cannot be raised
  once the library started it: past it every new socket (a call's RTP, a
  TCP connection) fails. The process's RLIMIT_NOFILE is raised to the
  hard limit, and TCP connections are budgeted so that calls always have
  their descriptors: total TCP ≤ 1,024 − 64 − 4 × native call cap.
- Events of an outbound call can reach the loop before ``ua.dial()``
  returns the library's Call (180/200 on loopback): they are buffered per
  call handle and replayed into the new call.
- User-Agent / Server header: fixed to "baresip-python" by the stack; the
  native bridge swaps libre's software string for ``EngineConfig.user_agent``.
- OPTIONS are answered ``200 OK`` by the request guard: the stack's own
  answer carried an SDP offering video and the catch-all account's user.
- Native drain rejects silently (486 in the SIP thread, the application
  never hears of it): drain is implemented here so refusals are reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any

from sipcore import sockets, tcpguard, threads
from sipcore.baresip_call import BaresipCall
from sipcore.engine import (
    AccountConfig,
    AccountHandle,
    Call,
    Direction,
    Engine,
    EngineConfig,
    EngineStats,
    IncomingCall,
    IncomingHandler,
    RefusedCall,
    RefusedCallback,
    RegistrationCallback,
    RegistrationState,
    RegistrationStatus,
)
from sipcore.errors import CallCanceled, DialFailed, DialRefused, EngineError, EngineNotRunning
from sipcore.native import NativeBridge, PacketSource, raise_nofile_limit
from sipcore.protection import FailureTracker, RateLimiter, ScannerFilter
from sipcore.registration import RegistrationFailure, RegistrationSupervisor
from sipcore.sipheaders import initial_invite_problem, parse_name_addr, parse_via_source

logger = logging.getLogger(__name__)
# A peer's REFER never makes us dial: the request guard answers it 603 Decline before the stack sees it
# (the stack itself would answer 202 and refuse in a NOTIFY; that policy stays as the fallback when the
# guard is unavailable). Transfers are ours to start (POST /calls/{id}/transfer, the transfer tool).
TRANSFER_POLICY = "reject"

_EXPOSED_HEADERS = ("User-Agent", "Via", "To", "From")
# What this baresip version can put on the wire for an inbound rejection.
WIRE_REJECT_STATUS = 486
_EARLY_HANDLES = 64
_MAINTENANCE_S = 0.5
NATIVE_MAX_FDS = 1024  # libre's poll set size (see module docs)
FDS_PER_CALL = 4  # SIP/RTP/RTCP sockets of one call
FDS_RESERVED = 64  # SIP listeners, DNS, the library's own queues
_ENDED_IGNORE_S = 5.0
_WILDCARDS = ("0.0.0.0", "::", "")


class _Account:
    def __init__(self, handle: AccountHandle, ua: Any) -> None:
        self.handle = handle
        self.ua = ua
        self.supervisor: RegistrationSupervisor | None = None
        self.removed = False


class BaresipEngine(Engine):
    """SIP engine on baresip-python (one per process)."""

    def __init__(self) -> None:
        self._bs: Any = None  # the baresip module
        self._errs: Any = None
        self._rt: Any = None
        self._config: EngineConfig | None = None
        self._catchall: Any = None
        self._accounts: dict[int, _Account] = {}
        self._ua_to_account: dict[int, _Account] = {}
        self._next_account = 1
        self._calls: dict[str, BaresipCall] = {}
        self._by_handle: dict[int, BaresipCall] = {}
        self._early: OrderedDict[int, list[Any]] = OrderedDict()
        self._handler: IncomingHandler | None = None
        self._refused_cb: RefusedCallback | None = None
        self._reg_callbacks: list[RegistrationCallback] = []
        self._draining = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._scanners = ScannerFilter(())
        self._limiter: RateLimiter | None = None
        self._total_limiter: RateLimiter | None = None
        self._failures = FailureTracker(20, 300.0)
        self._native: NativeBridge | None = None
        self._unowned: dict[int, float] = {}  # native call handle → first seen (monotonic)
        self._ended: dict[int, float] = {}  # handle → when our call ended (late events ignored)
        self._call_sources: dict[str, PacketSource] = {}
        self._native_calls: int | None = None
        self._orphans_reaped = 0
        self._orphans_logged: set[int] = set()
        self._malformed = 0
        self._refers_declined = 0
        self._invites_refused = 0
        self._tcp_connections = 0
        self._tcp_closed = 0
        self._listening: tuple[str, ...] = ()
        self._realtime = False  # the SIP thread runs SCHED_RR
        self._slacked: set[int] = set()  # threads whose timer slack was seen to (sipcore.threads)
        self._tcp_families: tuple[int, ...] = (socket.AF_INET, socket.AF_INET6)  # the SIP port's, once seen
        self._maintenance: asyncio.Task[Any] | None = None
        self._tcp_limits = tcpguard.TcpLimits()
        self.max_calls = 0

    # ------------------------------------------------------------------ helpers
    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """The one place tasks are created: named and held until done."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("task %s failed", task.get_name(), exc_info=task.exception())

    def _require_running(self) -> Any:
        if self._rt is None:
            raise EngineNotRunning("engine not started")
        return self._rt

    # ------------------------------------------------------------------ lifecycle
    async def start(self, config: EngineConfig) -> None:
        if self._rt is not None:
            raise EngineError("engine already started")
        import baresip  # noqa: PLC0415 - native library loaded only when an engine starts
        import baresip.errors

        self._bs, self._errs = baresip, baresip.errors
        self._config = config
        self.max_calls = config.max_calls
        self._scanners = ScannerFilter(config.scanner_user_agents)
        self._limiter = RateLimiter(config.invite_rate, config.invite_burst)
        self._total_limiter = RateLimiter(config.invite_rate_total, max(1, int(config.invite_rate_total * 2)))
        self._failures = FailureTracker(config.failure_block_threshold, config.failure_block_seconds,
                                        exempt=config.failure_block_exempt)
        soft_before, soft_after = raise_nofile_limit()
        headroom = max(4, config.max_calls // 10)
        budget = NATIVE_MAX_FDS - FDS_RESERVED - FDS_PER_CALL * (config.max_calls + headroom)
        self._tcp_limits = tcpguard.TcpLimits(min(config.tcp_max_per_source, max(budget, 1)),
                                              min(config.tcp_max_total, max(budget, 1)), config.tcp_idle_timeout)
        if budget < config.tcp_max_total:
            logger.warning("SIP TCP connections limited to %d in total (configured %d): the SIP stack watches at "
                           "most %d descriptors and %d calls need %d of them", max(budget, 1),
                           config.tcp_max_total, NATIVE_MAX_FDS, config.max_calls + headroom,
                           FDS_PER_CALL * (config.max_calls + headroom))
        wildcard = config.host in _WILDCARDS
        extra = (
            f"sip_listen {'0.0.0.0' if wildcard else config.host}:{config.port}\n"
            f"rtp_ports {config.rtp_port_min}-{config.rtp_port_max}\n"
            f"audio_jitter_buffer_type {'adaptive' if config.jitter_buffer_adaptive else 'fixed'}\n"
            f"audio_jitter_buffer_ms {config.jitter_buffer_ms[0]}-{config.jitter_buffer_ms[1]}\n"
        )  # no config key sets User-Agent/Server: the native bridge replaces "baresip-python"
        rt = baresip.Runtime()
        try:
            await rt.start(
                baresip.Config(
                    net_interface=config.public_address or (None if wildcard else config.host),
                    max_concurrent_calls=config.max_calls + headroom,
                    expose_headers=_EXPOSED_HEADERS,
                    rtp_timeout=config.rtp_timeout,
                    extra_config_text=extra,
                )
            )
        except baresip.BaresipError as exc:
            raise EngineError(f"engine start failed: {exc}") from exc
        self._rt = rt
        rt.subscribe(self._on_stack_event)
        logger.info("open-file limit %d → %d", soft_before, soft_after)
        await self._start_native(rt, wildcard)
        domain = f"{'127.0.0.1' if wildcard else config.host}:{config.port}"
        self._catchall = await baresip.UserAgent.create(
            rt,
            baresip.Account(
                user=config.catchall_user,
                domain=domain,
                password="",
                reg_interval=0,
                extra_params=("catchall=yes",),
            ),
            transfer_policy=TRANSFER_POLICY,
        )
        self._catchall.on_incoming(self._on_incoming)
        await self._tune_sockets(config)
        logger.info(
            "SIP engine listening on %s:%d; bound: %s",
            config.host, config.port, ", ".join(self._listening) or "nothing seen",
        )
        self._maintenance = self._spawn(self._maintain(), "sip-maintenance")

    async def _start_native(self, rt: Any, wildcard: bool) -> None:
        """Native bridge: request guard, loopback on a wildcard listen, real packet sources."""
        bridge = NativeBridge(rt)
        if not bridge.available:
            logger.warning("SIP native bridge unavailable (%s): malformed-INVITE guard, loopback on 0.0.0.0 and "
                           "real source addresses are not available", "; ".join(bridge.errors))
            return
        bridge.install()
        self._native = bridge
        if wildcard:
            try:
                await bridge.add_local_address("127.0.0.1")
            except Exception as exc:
                logger.warning("SIP engine could not add loopback to a wildcard listen: %s", exc)
        assert self._config is not None
        try:
            await bridge.set_software(self._config.user_agent)
        except Exception as exc:
            logger.warning("SIP User-Agent/Server stays 'baresip-python': %s", exc)
        try:
            await bridge.guard_requests(self._check_request)
        except Exception as exc:
            logger.warning("SIP request guard unavailable (malformed INVITEs reach the stack): %s", exc)
        slack = self._config.timer_slack_us
        if slack > 0:
            try:
                got = await bridge.set_timer_slack(slack)
                logger.info("SIP engine threads' timer slack %d µs", got // 1000)
            except Exception as exc:
                logger.warning("SIP engine threads keep the default timer slack: %s", exc)
        self._realtime = False
        if self._config.realtime_priority > 0:
            try:
                await bridge.set_realtime(self._config.realtime_priority)
                self._realtime = True
                logger.info("SIP engine threads run SCHED_RR at priority %d", self._config.realtime_priority)
            except PermissionError:
                logger.warning("SIP engine threads keep normal scheduling: SCHED_RR needs CAP_SYS_NICE or "
                               "RLIMIT_RTPRIO >= %d (ulimit -r; Docker: --cap-add SYS_NICE)",
                               self._config.realtime_priority)
            except Exception as exc:
                logger.warning("SIP engine threads keep normal scheduling: %s", exc)
        try:
            await bridge.trace_sources()
        except Exception as exc:
            logger.warning("real source addresses unavailable (inbound_cidrs cannot be verified): %s", exc)

    def _check_request(self, headers: dict[str, str | None]) -> tuple[int, str] | None:
        """SIP thread (request guard): what to answer instead of letting the stack see the request."""
        method = (headers.get("CSeq") or "").split()[-1:]
        if method == ["OPTIONS"]:
            return 200, "OK"  # the stack's own answer lists codecs, video and our account's user name
        if method == ["REFER"]:
            self._refers_declined += 1  # ints under the GIL: no lock needed
            return 603, "Decline"  # a peer never makes us dial (see TRANSFER_POLICY)
        reason = initial_invite_problem(headers)
        if reason is not None:
            self._malformed += 1
            return 400, reason
        return None

    async def _tune_sockets(self, config: EngineConfig) -> None:
        try:
            own = await asyncio.to_thread(sockets.own_sockets, config.port)
        except OSError as exc:
            logger.warning("cannot list the SIP sockets: %s", exc)
            return
        self._listening = tuple(sorted({
            f"{s.proto} {s.local_host if ':' not in s.local_host else f'[{s.local_host}]'}:{s.local_port}"
            for s in own if s.proto == "udp" or s.state == "listen"
        }))
        tcp_families = tuple(sorted({s.family for s in own if s.proto == "tcp" and s.state == "listen"}))
        if tcp_families:
            self._tcp_families = tcp_families
        if config.udp_receive_buffer > 0:
            try:
                sizes = await asyncio.to_thread(sockets.set_receive_buffer, own, config.udp_receive_buffer)
                logger.info("SIP UDP receive buffers: %s bytes", sorted(set(sizes)))
            except OSError as exc:
                logger.warning("SIP UDP receive buffer not raised: %s", exc)

    async def stop(self) -> None:
        rt = self._rt
        if rt is None:
            return
        if self._maintenance is not None:
            self._maintenance.cancel()
        for call in list(self._calls.values()):
            with contextlib.suppress(Exception):
                await call._hangup_as("shutdown")
        for entry in list(self._accounts.values()):
            with contextlib.suppress(Exception):
                await self.remove_account(entry.handle)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for call in list(self._calls.values()):
            call.force_end("shutdown")
        if self._native is not None:
            with contextlib.suppress(Exception):
                await self._native.close()
        with contextlib.suppress(Exception):
            await rt.close()
        self._rt = None

    async def drain(self) -> None:
        self._draining = True
        logger.info("SIP engine draining: new calls are refused")

    async def wait_idle(self, max_wait: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), max_wait)
        except TimeoutError:
            return False
        return True

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def active_call_count(self) -> int:
        return len(self._calls)

    @property
    def listen_address(self) -> tuple[str, int]:
        if self._config is None:
            raise EngineNotRunning("engine not started")
        return self._config.host, self._config.port

    def calls(self) -> list[Call]:
        return list(self._calls.values())

    def stats(self) -> EngineStats:
        return EngineStats(
            native_calls=self._native_calls,
            application_calls=len(self._calls),
            max_calls=self.max_calls,
            orphans_pending=self._stale_orphans(),
            orphans_reaped=self._orphans_reaped,
            invites_refused=self._invites_refused,
            malformed_rejected=self._malformed,
            sources_blocked=self._failures.blocked_count,
            tcp_connections=self._tcp_connections,
            tcp_closed=self._tcp_closed,
            source_verified=self._native is not None and self._native.available,
            listening=self._listening,
            realtime=self._realtime,
        )

    def _stale_orphans(self) -> int:
        if self._config is None:
            return 0
        now = time.monotonic()
        return sum(1 for first in self._unowned.values() if now - first >= self._config.orphan_grace)

    async def native_call_count(self) -> int:
        """Ask the stack how many calls it holds right now."""
        import json  # noqa: PLC0415

        from baresip._native import lib  # noqa: PLC0415

        _, payload = await self._require_running().cmd(lib.BP_CMD_CALL_COUNT)
        self._native_calls = int(json.loads(payload)["calls"])
        return self._native_calls

    # ------------------------------------------------------------------ maintenance
    async def _maintain(self) -> None:
        """Every second: free native calls nobody owns, refresh the native count, apply TCP limits."""
        assert self._config is not None
        limits = self._tcp_limits
        while True:
            await asyncio.sleep(_MAINTENANCE_S)
            try:
                self._note_orphans()
                await self.native_call_count()
                if self._realtime and self._config.timer_slack_us > 0:  # the SIP thread's RR took it from them
                    await asyncio.to_thread(threads.give_slack, self._slacked, self._config.timer_slack_us * 1000)
                protected = [(s.host, s.port) for s in self._call_sources.values() if s.transport != "udp"]
                result = await asyncio.to_thread(tcpguard.sweep, self._config.port, limits, protected,
                                                 self._tcp_families)
                self._tcp_connections = result.connections
                if result.closed:
                    self._tcp_closed += result.closed
                    logger.warning(
                        "SIP TCP limits: %d connection(s) open, closed %d idle, %d over the per-source cap, "
                        "%d over the total cap", result.connections, result.closed_idle,
                        result.closed_per_source, result.closed_total,
                    )
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("SIP maintenance pass failed")

    def _note_orphans(self) -> None:
        """Log native calls without an owner past the grace period (once each)."""
        assert self._config is not None
        now = time.monotonic()
        for handle, first in self._unowned.items():
            if now - first >= self._config.orphan_grace and handle not in self._orphans_logged:
                self._orphans_logged.add(handle)
                logger.warning("native call %x has had no owner for %.0f s (an INVITE the stack answered "
                               "itself); it holds a call slot", handle, now - first)
        self._orphans_logged &= set(self._unowned)
        if self._config.orphan_reap:
            self._spawn(self.reap_orphans(), "sip-reap")

    async def reap_orphans(self, grace: float | None = None) -> int:
        """Hang up native calls that have had no application owner for ``grace`` seconds.

        Off by default (``EngineConfig.orphan_reap``): measured with baresip-python 0.5.2a3, hanging up
        a call its ua.c already released after a failed accept corrupts the heap and aborts the
        process; the request guard keeps those INVITEs from the stack instead."""
        from baresip._native import lib  # noqa: PLC0415

        rt = self._require_running()
        assert self._config is not None
        grace = self._config.orphan_grace if grace is None else grace
        now = time.monotonic()
        freed = 0
        for handle, first in list(self._unowned.items()):
            if handle in self._by_handle:
                self._unowned.pop(handle, None)
                continue
            if now - first < grace:
                continue
            self._unowned.pop(handle, None)
            self._early.pop(handle, None)
            ev, _ = await rt.cmd(lib.BP_CMD_CALL_HANGUP, args=str(handle))
            if ev != lib.BP_EV_STALE_HANDLE:
                freed += 1
        if freed:
            self._orphans_reaped += freed
            logger.warning("freed %d native call(s) that had no owner (INVITEs the stack answered itself, "
                           "e.g. 500 to a malformed request); %d freed since start", freed, self._orphans_reaped)
        return freed

    # ------------------------------------------------------------------ accounts
    async def add_account(self, config: AccountConfig) -> AccountHandle:
        rt = self._require_running()
        bs = self._bs
        # From is the account's address-of-record: with a from_domain the AOR takes that host and every
        # request is sent through the real domain (or the configured proxy) as the outbound proxy.
        proxy = config.outbound_proxy
        if config.from_domain and config.from_domain != config.domain and not proxy:
            proxy = config.domain if config.transport == "udp" else f"{config.domain};transport={config.transport}"
        try:
            account = bs.Account(
                user=config.user,
                domain=config.from_domain or config.domain,
                password=config.password,
                registrar=proxy,
                reg_interval=config.expires if config.register else 0,
                transport=config.transport,
                audio_codecs=config.codecs,
                auth_user=config.auth_user,
            )
            ua = await bs.UserAgent.create(rt, account, transfer_policy=TRANSFER_POLICY)
        except (ValueError, bs.BaresipError) as exc:
            raise EngineError(f"account rejected: {exc}") from exc
        handle = AccountHandle(self._next_account, config)
        self._next_account += 1
        entry = _Account(handle, ua)
        self._accounts[handle.id] = entry
        self._ua_to_account[ua.handle] = entry
        ua.on_incoming(self._on_incoming)
        if config.register:
            entry.supervisor = RegistrationSupervisor(
                lambda: self._register(entry),
                config.expires,
                lambda status: self._emit_registration(handle, status),
            )
            ua.on(lambda event: self._on_ua_event(entry, event))
            entry.supervisor.start()
        return handle

    async def _register(self, entry: _Account) -> None:
        try:
            await entry.ua.register()
        except self._errs.RegistrationError as exc:
            raise RegistrationFailure(str(exc), sip_status=exc.status) from exc
        except self._errs.BaresipError as exc:
            raise RegistrationFailure(str(exc)) from exc

    def _on_ua_event(self, entry: _Account, event: Any) -> None:
        sup = entry.supervisor
        if sup is None or entry.removed or sup.status.state is RegistrationState.REGISTERING:
            return  # outcomes of our own register() are handled there
        name = event.event.name
        if name == "REGISTER_OK":
            sup.native_ok()
        elif name == "REGISTER_FAIL":
            status, _, _ = (event.text or "").partition(" ")
            sup.native_failed(int(status) if status.isdigit() else None, event.text or "")

    def _emit_registration(self, handle: AccountHandle, status: RegistrationStatus) -> None:
        for callback in list(self._reg_callbacks):
            try:
                callback(handle, status)
            except Exception:
                logger.exception("registration callback raised")

    async def remove_account(self, handle: AccountHandle) -> None:
        """Stop using an account. This baresip version cannot free a user agent:
        it is unregistered and ignored from then on (INVITEs to it are refused)."""
        entry = self._accounts.pop(handle.id, None)
        if entry is None:
            return
        entry.removed = True
        if entry.supervisor is not None:
            await entry.supervisor.settle(12.0)  # a REGISTER in flight: its success must be undone below
            await entry.supervisor.stop()
            # whatever the state now (registered, or failed after a native refresh failed): the UA stops
            # renewing only when unregistered; a no-op for a UA that never registered
            with contextlib.suppress(self._errs.BaresipError):
                await entry.ua.unregister(timeout=3.0)

    def registration(self, handle: AccountHandle) -> RegistrationStatus:
        entry = self._accounts.get(handle.id)
        if entry is None or entry.supervisor is None:
            return RegistrationStatus(RegistrationState.UNREGISTERED)
        return entry.supervisor.status

    def on_registration(self, callback: RegistrationCallback) -> None:
        self._reg_callbacks.append(callback)

    # ------------------------------------------------------------------ inbound
    def set_incoming_handler(self, handler: IncomingHandler | None) -> None:
        self._handler = handler

    def on_refused(self, callback: RefusedCallback | None) -> None:
        self._refused_cb = callback

    def _on_stack_event(self, event: Any) -> None:
        """Every stack event: note native calls without an owner, buffer early outbound events."""
        handle = event.call
        if not handle or handle in self._by_handle:
            return
        ended = self._ended.get(handle)
        if ended is not None:
            if time.monotonic() - ended < _ENDED_IGNORE_S:
                return  # late event of a call of ours that just ended
            del self._ended[handle]
        if event.event.name == "CALL_CLOSED":
            self._unowned.pop(handle, None)
            self._early.pop(handle, None)
            return
        self._unowned.setdefault(handle, time.monotonic())
        self._buffer_early_event(event)

    def _buffer_early_event(self, event: Any) -> None:
        """Keep call events whose call object does not exist yet (see BaresipCall.replay)."""
        handle = event.call
        self._early.setdefault(handle, []).append(event)
        self._early.move_to_end(handle)
        while len(self._early) > _EARLY_HANDLES:
            self._early.popitem(last=False)

    def _track(self, call: BaresipCall) -> None:
        self._calls[call.id] = call
        self._by_handle[call.native_handle] = call
        self._early.pop(call.native_handle, None)
        self._unowned.pop(call.native_handle, None)
        self._ended.pop(call.native_handle, None)
        self._idle.clear()

    def _untrack(self, call: BaresipCall) -> None:
        self._calls.pop(call.id, None)
        self._by_handle.pop(call.native_handle, None)
        self._call_sources.pop(call.id, None)
        now = time.monotonic()
        self._ended[call.native_handle] = now
        for handle, at in list(self._ended.items()):
            if now - at > _ENDED_IGNORE_S:
                del self._ended[handle]
        if self._native is not None:
            self._native.sources.forget(call.sip_call_id)
        if not self._calls:
            self._idle.set()

    def _on_incoming(self, native: Any) -> None:
        """Loop thread, from the stack's CALL_INCOMING event."""
        call = BaresipCall(native, Direction.INBOUND, on_end=self._untrack, errors=self._errs)
        over_capacity = len(self._calls) >= self.max_calls
        self._track(call)
        headers = {k.lower(): v for k, v in (native.headers or {}).items()}
        to = parse_name_addr(headers.get("to"))
        caller = parse_name_addr(headers.get("from") or native.peer)
        via_host, _ = parse_via_source(headers.get("via"))
        source = self._native.sources.get(native.call_id) if self._native is not None else None
        if source is not None:
            self._call_sources[call.id] = source
            call.offer_has_video = source.offers_video
        entry = self._ua_to_account.get(getattr(native, "_ua_handle", 0))
        incoming = IncomingCall(
            call=call,
            engine_call_id=call.id,
            sip_call_id=native.call_id,
            request_user=to.user,
            to_user=to.user,
            from_user=caller.user,
            from_uri=caller.uri or (native.peer or ""),
            from_display=caller.display,
            source_host=source.host if source else None,
            source_port=source.port if source else None,
            user_agent=headers.get("user-agent"),
            account=entry.handle if entry is not None else None,
            source_transport=source.transport if source else None,
            source_verified=source is not None,
            via_host=via_host,
        )
        key = source.host if source else None
        refusal: tuple[int, str] | None = None
        if self._failures.blocked(key):
            refusal = (403, "blocked")
        elif self._scanners.is_scanner(incoming.user_agent):
            refusal = (403, "scanner")
        elif self._total_limiter is not None and not self._total_limiter.allow("*"):
            refusal = (503, "rate_limited")
        elif self._limiter is not None and not self._limiter.allow(key or "unverified"):
            refusal = (503, "rate_limited")
        elif self._draining:
            refusal = (503, "draining")
        elif over_capacity:
            refusal = (503, "over_capacity")
        elif entry is not None and entry.removed:
            refusal = (404, "account_removed")
        elif self._handler is None:
            refusal = (480, "no_handler")
        if refusal is not None:
            self._spawn(self._refuse(incoming, *refusal), f"sip-refuse-{call.id}")
            return
        self._spawn(self._run_handler(incoming), f"sip-incoming-{call.id}")

    async def _refuse(self, incoming: IncomingCall, status: int, reason: str) -> None:
        self._invites_refused += 1
        if reason in ("scanner", "rate_limited", "blocked") and self._failures.failed(incoming.source_host):
            logger.warning("SIP source %s blocked for %.0f s after repeated failed INVITEs",
                           incoming.source_host, self._failures.block_s)
        await incoming.call.reject(status, reason)
        if reason in ("scanner", "blocked"):
            return  # not a call: never reported
        if self._refused_cb is not None:
            try:
                self._refused_cb(RefusedCall(incoming, status, WIRE_REJECT_STATUS, reason))
            except Exception:
                logger.exception("refused-call callback raised")

    async def _run_handler(self, incoming: IncomingCall) -> None:
        call = incoming.call
        assert self._handler is not None
        try:
            await self._handler(incoming)
        except CallCanceled:
            logger.info("call %s canceled by the caller before it was answered", call.id)
            return
        except Exception:
            logger.exception("incoming handler raised; rejecting call %s", call.id)
            await call.reject(500, "handler_error")
            return
        if call.end is None and not call.answered and call.desired_reject_status is None:
            await self._wait_answer_started(call)
        if call.desired_reject_status is not None and call.desired_reject_status not in (486, 503):
            # the application refused it (unknown number, source not allowed…): a failure of this source
            if self._failures.failed(incoming.source_host):
                logger.warning("SIP source %s blocked for %.0f s after repeated failed INVITEs",
                               incoming.source_host, self._failures.block_s)
        elif call.answered or call.desired_reject_status is None:
            self._failures.succeeded(incoming.source_host)

    async def _wait_answer_started(self, call: Call) -> None:
        # answer() returns before ESTABLISHED; give it a moment before deciding.
        with contextlib.suppress(TimeoutError, DialFailed):
            await asyncio.wait_for(call.wait_answered(), 5.0)
            return
        if call.end is None and not call.answered:
            logger.warning("incoming handler neither answered nor rejected call %s", call.id)
            await call.reject(500, "handler_error")

    # ------------------------------------------------------------------ outbound
    async def dial(
        self,
        uri: str,
        *,
        account: AccountHandle | None = None,
        from_user: str | None = None,
        headers: dict[str, str] | None = None,
        answer_timeout: float = 60.0,
        setup_timeout: float = 32.0,
    ) -> Call:
        """See :meth:`Engine.dial`. Caller ID: this engine cannot rewrite the From
        user per call (From is the account's address-of-record); ``from_user``
        is sent as P-Asserted-Identity, which carriers use for caller ID."""
        self._require_running()
        if self._draining:
            raise DialRefused("engine is draining", reason="draining")
        if len(self._calls) >= self.max_calls:
            raise DialRefused("engine is at max_calls", reason="over_capacity")
        ua = self._catchall
        domain = "{}:{}".format(*self.listen_address)
        if account is not None:
            entry = self._accounts.get(account.id)
            if entry is None:
                raise DialRefused("unknown or removed account", reason="no_route")
            ua, domain = entry.ua, entry.handle.config.domain
        extra = dict(headers or {})
        if from_user:
            extra.setdefault("P-Asserted-Identity", f"<sip:{from_user}@{domain.split(':')[0]}>")
        errs = self._errs
        try:
            native = await ua.dial(uri, extra)
        except ValueError as exc:
            raise DialRefused(str(exc), reason="invalid_uri") from exc
        except errs.DrainingError as exc:
            raise DialRefused(str(exc), reason="draining") from exc
        except errs.NoLocalAddressError as exc:
            raise DialRefused(str(exc), reason="no_route") from exc
        except errs.BaresipError as exc:
            raise DialRefused(str(exc), reason="engine") from exc
        call = BaresipCall(native, Direction.OUTBOUND, on_end=self._untrack, errors=errs)
        early = self._early.pop(native.handle, [])
        self._track(call)
        call.replay(early)
        self._spawn(call.supervise_outbound(answer_timeout, setup_timeout), f"sip-dial-{call.id}")
        return call
