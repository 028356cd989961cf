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
  incoming event, giving the scanner check and a (Via-claimed) source.
- Events of an outbound call can reach the loop before ``ua.dial()``
  returns the library's Call (180/200 on loopback): they are buffered per
  call handle and replayed into the new call.
- User-Agent / Server header: fixed to "baresip-python" by the stack;
  ``EngineConfig.user_agent`` is not applied by this engine.
- Native drain rejects silently (486 in the SIP thread, the application
  never hears of it): drain is implemented here so refusals are reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any

from sipcore.baresip_call import BaresipCall
from sipcore.engine import (
    AccountConfig,
    AccountHandle,
    Call,
    Direction,
    Engine,
    EngineConfig,
    IncomingCall,
    IncomingHandler,
    RefusedCall,
    RefusedCallback,
    RegistrationCallback,
    RegistrationState,
    RegistrationStatus,
)
from sipcore.errors import DialFailed, DialRefused, EngineError, EngineNotRunning
from sipcore.protection import RateLimiter, ScannerFilter
from sipcore.registration import RegistrationFailure, RegistrationSupervisor
from sipcore.sipheaders import parse_name_addr, parse_via_source

logger = logging.getLogger(__name__)
# A peer's REFER never makes us dial: the engine answers it 603. Transfers are ours to start
# (POST /calls/{id}/transfer, the agent's transfer tool), never the remote party's.
TRANSFER_POLICY = "reject"

_EXPOSED_HEADERS = ("User-Agent", "Via", "To", "From")
# What this baresip version can put on the wire for an inbound rejection.
WIRE_REJECT_STATUS = 486
_EARLY_HANDLES = 64


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
        headroom = max(4, config.max_calls // 10)
        wildcard = config.host in ("0.0.0.0", "::", "")
        extra = (
            f"sip_listen {'0.0.0.0' if wildcard else config.host}:{config.port}\n"
            f"rtp_ports {config.rtp_port_min}-{config.rtp_port_max}\n"
        )  # no config key sets User-Agent/Server: the stack sends "baresip-python"
        rt = baresip.Runtime()
        try:
            await rt.start(
                baresip.Config(
                    net_interface=None if wildcard else config.host,
                    max_concurrent_calls=config.max_calls + headroom,
                    expose_headers=_EXPOSED_HEADERS,
                    rtp_timeout=config.rtp_timeout,
                    extra_config_text=extra,
                )
            )
        except baresip.BaresipError as exc:
            raise EngineError(f"engine start failed: {exc}") from exc
        self._rt = rt
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
        rt.subscribe(self._buffer_early_event)
        logger.info("SIP engine listening on %s:%d (udp+tcp)", config.host, config.port)

    async def stop(self) -> None:
        rt = self._rt
        if rt is None:
            return
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

    # ------------------------------------------------------------------ accounts
    async def add_account(self, config: AccountConfig) -> AccountHandle:
        rt = self._require_running()
        bs = self._bs
        try:
            account = bs.Account(
                user=config.user,
                domain=config.domain,
                password=config.password,
                registrar=config.outbound_proxy,
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
            was_registered = entry.supervisor.status.state is RegistrationState.REGISTERED
            await entry.supervisor.stop()
            if was_registered:
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

    def _buffer_early_event(self, event: Any) -> None:
        """Keep call events whose call object does not exist yet (see BaresipCall.replay)."""
        handle = event.call
        if not handle or handle in self._by_handle:
            return
        self._early.setdefault(handle, []).append(event)
        self._early.move_to_end(handle)
        while len(self._early) > _EARLY_HANDLES:
            self._early.popitem(last=False)

    def _track(self, call: BaresipCall) -> None:
        self._calls[call.id] = call
        self._by_handle[call.native_handle] = call
        self._early.pop(call.native_handle, None)
        self._idle.clear()

    def _untrack(self, call: BaresipCall) -> None:
        self._calls.pop(call.id, None)
        self._by_handle.pop(call.native_handle, None)
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
        host, port = parse_via_source(headers.get("via"))
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
            source_host=host,
            source_port=port,
            user_agent=headers.get("user-agent"),
            account=entry.handle if entry is not None else None,
        )
        refusal: tuple[int, str] | None = None
        if self._scanners.is_scanner(incoming.user_agent):
            refusal = (403, "scanner")
        elif self._limiter is not None and not self._limiter.allow(host or "?"):
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
        await incoming.call.reject(status, reason)
        if reason == "scanner":
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
        except Exception:
            logger.exception("incoming handler raised; rejecting call %s", call.id)
            await call.reject(500, "handler_error")
            return
        if call.end is None and not call.answered and call.desired_reject_status is None:
            await self._wait_answer_started(call)

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
