"""A small bridge to the native stack under baresip-python, for what its Python API does not expose.

baresip-python 0.5.2a3 (pinned exactly) ships baresip 4.x / libre 4.x in one shared object whose C symbols
are exported. What Switchboard needs from it and only reaches there:

- **Running code on the SIP thread.** libre is not thread-safe: its functions must run on the thread that
  owns the stack. The library delivers every native event through one sink called *on that thread*; the
  bridge wraps the sink, and a job queued here runs there before the next event (a PING command makes
  one at once). ``re_thread_enter`` from another thread does not work with this build (the sockets it
  creates are never polled), hence this route.
- **Loopback on a wildcard listen.** With ``net_interface`` unset the stack discovers interfaces and
  skips loopback, so ``0.0.0.0`` did not cover 127.0.0.1 (inbound or outbound). The bridge adds the
  loopback address to the stack's address list and rebuilds the SIP transports, on the SIP thread.
- (Not possible: the descriptor cap. libre watches at most 1,024 descriptors — "fd_listen maxfds
  reached" — and ``fd_setsize`` only takes effect before polling starts, inside the library's own
  start-up; measured: calling it later changes nothing. The engine budgets TCP connections instead.)
- **Timer slack for the stack's threads.** baresip 4.x sends each call's RTP from a transmit thread of its
  own ("Audio TX") that wakes every 4 ms to see whether a 20 ms packet is due: ~240 wake-ups a second per
  call, plus 50 each for the call's audio source and player threads. Threads inherit the timer slack of the
  thread that starts them, and the stack starts them from the SIP thread: a slack set there lets the
  kernel batch those wake-ups (the engine sets it; see ``EngineConfig.timer_slack_us``).
- **The real source of each request.** The stack parses Via but never reports the packet's source
  address. libre's SIP trace hook sees every received message with its real source before it is
  handled: the bridge records ``Call-ID → (transport, host, port)`` for INVITEs (bounded), so inbound
  routing and rate limits do not trust a header the caller wrote.

Every entry point degrades: if a symbol is missing (another library build), the bridge says so in the
log and the engine carries on without that feature (and reports it, e.g. the source as unverified).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import re
import resource
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

PR_SET_TIMERSLACK, PR_GET_TIMERSLACK = 29, 30  # <linux/prctl.h>
_SA_SIZE = 128  # struct sa is 32 bytes on Linux; a roomy buffer keeps us layout-agnostic
_TRANSPORTS = {0: "udp", 1: "tcp", 2: "tls", 3: "ws", 4: "wss"}
_CALL_ID = re.compile(rb"^(?:call-id|i)[ \t]*:[ \t]*([^\r\n]+)", re.I | re.M)
_MSG_H = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_void_p)  # bool (*)(const sip_msg*, void*)
_LE_SIZE = 32  # struct le: prev, next, list, data
_HDR_VAL = 2 * _LE_SIZE + 16  # struct sip_hdr: le, he, pl name, pl val
_GUARDED = (("From", "f"), ("To", "t"), ("Contact", "m"), ("CSeq",), ("Record-Route",))
_TRACE_H = ctypes.CFUNCTYPE(
    None,
    ctypes.c_bool,  # tx
    ctypes.c_int,  # enum sip_transp
    ctypes.c_void_p,  # const struct sa *src
    ctypes.c_void_p,  # const struct sa *dst
    ctypes.c_void_p,  # const uint8_t *pkt
    ctypes.c_size_t,  # len
    ctypes.c_void_p,  # arg
)


@dataclass(frozen=True)
class PacketSource:
    """Where a request really came from (the socket's peer, not a header)."""

    transport: str
    host: str
    port: int
    offers_video: bool = False  # the INVITE's SDP offers an active video stream


class SourceLog:
    """Call-ID → real source of the INVITEs received, bounded (oldest forgotten first).

    Written on the SIP thread, read on the loop: guarded by a lock (held for a dict operation only).
    """

    def __init__(self, max_entries: int = 20_000) -> None:
        self._max = max_entries
        self._entries: OrderedDict[str, PacketSource] = OrderedDict()
        self._lock = threading.Lock()
        self.recorded = 0

    def record(self, call_id: str, source: PacketSource) -> None:
        with self._lock:
            if call_id not in self._entries:
                self._entries[call_id] = source
                self.recorded += 1
                while len(self._entries) > self._max:
                    self._entries.popitem(last=False)

    def get(self, call_id: str | None) -> PacketSource | None:
        if not call_id:
            return None
        with self._lock:
            return self._entries.get(call_id)

    def forget(self, call_id: str | None) -> None:
        if call_id:
            with self._lock:
                self._entries.pop(call_id, None)


def invite_call_id(packet: bytes) -> str | None:
    """The Call-ID of a packet if it is an INVITE request (cheap checks; garbage → None)."""
    if not packet.startswith(b"INVITE "):
        return None
    head = packet.split(b"\r\n\r\n", 1)[0]
    match = _CALL_ID.search(head)
    if not match:
        return None
    return match.group(1).strip().decode("utf-8", "replace") or None


_VIDEO_LINE = re.compile(rb"^m=video[ \t]+([1-9][0-9]*)", re.M)


def offers_video(packet: bytes) -> bool:
    """Whether a SIP message's SDP body offers video on a non-zero port."""
    parts = packet.split(b"\r\n\r\n", 1)
    return len(parts) == 2 and _VIDEO_LINE.search(parts[1].replace(b"\r\n", b"\n")) is not None


def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            logger.warning("could not raise the open-file limit from %d to %d: %s", soft, hard, exc)
            return soft, soft
        return soft, hard
    return soft, soft


class NativeBridge:
    """Access to the stack's C functions, each run on the SIP thread (see the module docs)."""

    def __init__(self, runtime: Any) -> None:
        from baresip import _events, _native  # noqa: PLC0415 - native code only once an engine runs

        self._runtime = runtime
        self._events = _events
        self._ping = _native.lib.BP_CMD_PING
        self._jobs: list[Callable[[], None]] = []
        self._jobs_lock = threading.Lock()
        self._inner: Any = None
        self._trace_cb: Any = None  # keeps the ctypes callbacks alive
        self._guard_cb: Any = None
        self.sources = SourceLog()
        self.errors: list[str] = []
        try:
            self._lib: Any = ctypes.CDLL(_native.__file__)
            for name in ("baresip_network", "uag_sip"):
                getattr(self._lib, name).restype = ctypes.c_void_p
            self._lib.sa_port.restype = ctypes.c_uint16
        except (OSError, AttributeError) as exc:
            self._lib = None
            self.errors.append(f"native symbols unavailable: {exc}")

    @property
    def available(self) -> bool:
        return self._lib is not None

    # ------------------------------------------------------------------ SIP-thread execution
    def install(self) -> None:
        """Wrap the runtime's event sink (call once, after the runtime started)."""
        inner = self._events.set_sink(self._sink)
        self._inner = inner

    def uninstall(self) -> None:
        if self._events._sink is self._sink:
            self._events.set_sink(self._inner)

    def _sink(self, ev: int, handle: int, payload: bytes | None) -> None:
        if self._jobs:
            with self._jobs_lock:
                jobs, self._jobs = self._jobs, []
            for job in jobs:
                job()
        inner = self._inner
        if inner is not None:
            inner(ev, handle, payload)

    async def set_timer_slack(self, microseconds: int) -> int:
        """The SIP thread's timer slack (Linux ``PR_SET_TIMERSLACK``); every thread the stack starts from it
        afterwards — each call's audio source, player and transmit threads — inherits it. Returns the slack
        now in force, in ns (read back from the kernel)."""
        libc = ctypes.CDLL(None, use_errno=True)

        def apply() -> int:
            if libc.prctl(PR_SET_TIMERSLACK, ctypes.c_ulong(microseconds * 1000), 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_SET_TIMERSLACK) failed")
            return int(libc.prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0))

        return await self.on_sip_thread(apply)

    async def set_realtime(self, priority: int) -> None:
        """The SIP thread (SIP and RTP receive) in ``SCHED_RR`` at ``priority``; the threads the stack starts
        from it (each call's audio source, player and transmit threads) begin normal (reset on fork), but with
        no timer slack: a thread made real-time loses its slack and passes that on (Linux 6.x), see
        `sipcore.threads.give_slack`. Raises PermissionError without CAP_SYS_NICE or RLIMIT_RTPRIO."""

        def apply() -> None:
            os.sched_setscheduler(0, os.SCHED_RR | os.SCHED_RESET_ON_FORK, os.sched_param(priority))

        await self.on_sip_thread(apply)

    async def on_sip_thread(self, fn: Callable[[], T], wait_s: float = 5.0) -> T:
        """Run ``fn()`` on the SIP thread; return its result (or raise its exception)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()

        def job() -> None:
            try:
                result = fn()
            except BaseException as exc:  # delivered to the awaiting coroutine
                loop.call_soon_threadsafe(_settle_exc, fut, exc)
            else:
                loop.call_soon_threadsafe(_settle, fut, result)

        with self._jobs_lock:
            self._jobs.append(job)
        await self._runtime.cmd(self._ping)  # its PONG passes through the sink on the SIP thread
        return await asyncio.wait_for(fut, wait_s)

    # ------------------------------------------------------------------ features
    def _sa(self, host: str, port: int = 0) -> ctypes.Array[ctypes.c_char]:
        sa = ctypes.create_string_buffer(_SA_SIZE)
        if self._lib.sa_set_str(sa, host.encode(), ctypes.c_uint16(port)) != 0:
            raise ValueError(f"not an IP address: {host!r}")
        return sa

    async def add_local_address(self, host: str) -> None:
        """Add ``host`` to the stack's local addresses and rebuild the SIP transports (start-up only:
        it closes the existing SIP sockets and TCP connections)."""
        if self._lib is None:
            raise RuntimeError("native bridge unavailable")
        sa = self._sa(host)
        lib = self._lib

        def job() -> int:
            err = int(lib.net_add_address(ctypes.c_void_p(lib.baresip_network()), sa))
            if err:
                return err
            return int(lib.uag_reset_transp(ctypes.c_bool(False), ctypes.c_bool(False)))

        err = await self.on_sip_thread(job)
        if err:
            raise OSError(err, f"adding local address {host} failed")

    async def trace_sources(self) -> None:
        """Record the real source of every received INVITE in :attr:`sources`."""
        if self._lib is None:
            raise RuntimeError("native bridge unavailable")
        lib = self._lib
        sources = self.sources
        host_buf = ctypes.create_string_buffer(64)

        def on_trace(tx: bool, tp: int, src: int | None, dst: int | None, pkt: int | None, length: int,
                     arg: int | None) -> None:
            # SIP thread, for every message sent or received: stay cheap and never raise into C.
            try:
                if tx or not pkt or not src or length < 8:
                    return
                if ctypes.string_at(pkt, 7) != b"INVITE ":
                    return
                packet = ctypes.string_at(pkt, min(length, 65536))
                call_id = invite_call_id(packet)
                if call_id is None:
                    return
                if lib.sa_ntop(ctypes.c_void_p(src), host_buf, len(host_buf)) != 0:
                    return
                sources.record(call_id, PacketSource(_TRANSPORTS.get(tp, "udp"), host_buf.value.decode(),
                                                     int(lib.sa_port(ctypes.c_void_p(src))),
                                                     offers_video(packet)))
            except Exception:  # pragma: no cover - a bug here must not take the SIP thread down
                logger.exception("SIP trace hook failed")

        self._trace_cb = _TRACE_H(on_trace)
        cb = self._trace_cb
        await self.on_sip_thread(lambda: lib.sip_set_trace_handler(ctypes.c_void_p(lib.uag_sip()), cb))

    async def guard_requests(self, check: Callable[[dict[str, str | None]], tuple[int, str] | None]) -> None:
        """Put a request listener in front of the stack's own, so ``check`` sees every request first.

        ``check`` gets the first value of From, To, Contact, CSeq and Record-Route (None when absent)
        and returns None to let the request through, or the (status, reason) to answer instead.
        Exists because the stack answers some malformed INVITEs 500 and leaks (and damages) the call it
        allocated; freeing those calls afterwards crashes it, so they must never reach it.

        The listener list is found by checking libre's layout at run time (the new listener must be the
        list's tail at one of the two offsets libre versions use); if neither matches, nothing is moved
        and the guard is reported unavailable.
        """
        if self._lib is None:
            raise RuntimeError("native bridge unavailable")
        lib = self._lib
        lib.sip_msg_xhdr.restype = ctypes.c_void_p
        lib.sip_msg_xhdr.argtypes = [ctypes.c_void_p, ctypes.c_char_p]

        def header(msg: int, names: tuple[str, ...]) -> str | None:
            for name in names:
                hdr = lib.sip_msg_xhdr(ctypes.c_void_p(msg), name.encode())
                if hdr:
                    ptr = ctypes.c_void_p.from_address(hdr + _HDR_VAL).value
                    size = ctypes.c_size_t.from_address(hdr + _HDR_VAL + 8).value
                    if not ptr:
                        return ""
                    return ctypes.string_at(ptr, min(size, 8192)).decode("utf-8", "replace")
            return None

        def on_request(msg: int | None, arg: int | None) -> bool:
            try:
                if not msg:
                    return False
                values = {names[0]: header(msg, names) for names in _GUARDED}
                verdict = check(values)
                if verdict is None:
                    return False
                status, reason = verdict
                lib.sip_treply(None, ctypes.c_void_p(lib.uag_sip()), ctypes.c_void_p(msg), ctypes.c_uint16(status),
                               reason.encode()[:100])
                return True
            except Exception:  # pragma: no cover - never raise into C
                logger.exception("SIP request guard failed")
                return False

        self._guard_cb = _MSG_H(on_request)
        cb = self._guard_cb
        holder = ctypes.c_void_p()

        def install() -> str | None:
            sip = lib.uag_sip()
            err = lib.sip_listen(ctypes.byref(holder), ctypes.c_void_p(sip), ctypes.c_bool(True), cb, None)
            if err or not holder.value:
                return f"sip_listen failed ({err})"
            lsnr = holder.value
            for offset in (24, 16):  # struct list {head, tail[, cnt]}: lsnrl follows transpl
                lst = sip + offset
                tail = ctypes.c_void_p.from_address(lst + 8).value
                back = ctypes.c_void_p.from_address(lsnr + 16).value  # le.list
                if tail == lsnr and back == lst:
                    lib.list_unlink(ctypes.c_void_p(lsnr))
                    lib.list_prepend(ctypes.c_void_p(lst), ctypes.c_void_p(lsnr), ctypes.c_void_p(lsnr))
                    return None
            return "listener list layout not recognised (guard left last, where it sees no INVITE)"

        problem = await self.on_sip_thread(install)
        if problem:
            raise RuntimeError(problem)

    async def set_software(self, name: str, current: str = "baresip-python") -> None:
        """Replace the stack's User-Agent / Server value (libre's ``sip->software``, fixed by the library).

        The field is found by content: the pointer-sized word among the first 32 of ``struct sip`` that
        points to ``current``. The new string is allocated with libre's own allocator (the stack frees
        it at shutdown) and the old one released, on the SIP thread.
        """
        if self._lib is None:
            raise RuntimeError("native bridge unavailable")
        if not name or any(c in name for c in "\r\n") or len(name) > 100:
            raise ValueError("user agent must be one line of at most 100 characters")
        lib = self._lib
        want = current.encode()

        def swap() -> str | None:
            sip = lib.uag_sip()
            for i in range(32):
                slot = ctypes.c_void_p.from_address(sip + 8 * i)
                ptr = slot.value
                if not ptr or ptr < 4096:
                    continue
                try:
                    if ctypes.string_at(ptr, len(want) + 1) != want + b"\0":
                        continue
                except Exception:  # pragma: no cover - string_at reads memory: unmapped words never match
                    continue
                new = ctypes.c_void_p()
                if lib.str_dup(ctypes.byref(new), name.encode()) != 0 or not new.value:
                    return "str_dup failed"
                slot.value = new.value
                lib.mem_deref(ctypes.c_void_p(ptr))
                return None
            return f"{current!r} not found in the SIP stack"

        problem = await self.on_sip_thread(swap)
        if problem:
            raise RuntimeError(problem)

    async def close(self) -> None:
        """Detach the trace hook (the stack keeps a pointer to it) and the sink wrapper."""
        if self._lib is not None and self._trace_cb is not None:
            lib = self._lib
            try:
                await self.on_sip_thread(lambda: lib.sip_set_trace_handler(ctypes.c_void_p(lib.uag_sip()), None))
            except Exception as exc:
                logger.debug("trace hook not detached: %s", exc)
        self.uninstall()


def _settle(fut: asyncio.Future[Any], result: Any) -> None:
    if not fut.done():
        fut.set_result(result)


def _settle_exc(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
