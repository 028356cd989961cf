"""Switchboard's own SIP engine interface.

Everything outside ``sipcore`` talks SIP through the abstract classes and
dataclasses defined here; the engine library (baresip-python today, maybe
pjsua2 later) stays hidden in its own module (:mod:`sipcore.baresip_engine`).

Threading contract: every method here is called on the asyncio loop that
started the engine, and every callback / event is delivered on that loop.
The engine's native threads never call application code directly.

Typical use::

    engine = BaresipEngine()
    await engine.start(EngineConfig(host="0.0.0.0", port=5060))
    engine.set_incoming_handler(route_call)          # inbound
    trunk = await engine.add_account(AccountConfig(...))
    call = await engine.dial("sip:+15551230000@carrier", account=trunk)
    end = await call.wait_answered()                  # raises DialFailed
    async for event in call.events(): ...
"""

from __future__ import annotations

import abc
import enum
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sipcore.calltypes import (
    CallAnswered,
    CallEnd,
    CallEnded,
    CallEvent,
    CallRinging,
    Direction,
    DtmfReceived,
    HangupBy,
    RtpStats,
)

__all__ = [
    "AccountConfig",
    "AccountHandle",
    "Call",
    "CallAnswered",
    "CallEnd",
    "CallEnded",
    "CallEvent",
    "CallRinging",
    "Direction",
    "DtmfReceived",
    "Engine",
    "EngineConfig",
    "EngineStats",
    "HangupBy",
    "IncomingCall",
    "RefusedCall",
    "RegistrationState",
    "RegistrationStatus",
    "RtpStats",
]

Transport = Literal["udp", "tcp", "tls"]


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class EngineConfig:
    """Process-wide engine settings, fixed at :meth:`Engine.start`.

    Attributes:
        host: Address to listen on (UDP and TCP). Also the address put in
            SDP/Contact; ``0.0.0.0`` lets the engine discover interfaces.
        port: SIP port (UDP and TCP).
        rtp_port_min / rtp_port_max: RTP port range for calls.
        max_calls: Concurrent calls (both directions). Inbound INVITEs over
            the limit are refused (and reported to the refused-call
            callback); ``dial`` raises :class:`DialRefused`.
        user_agent: Value of the User-Agent (requests) and Server (responses)
            headers we send.
        rtp_timeout: Seconds without received RTP before a call is hung
            up (cause MEDIA_TIMEOUT); 0 disables.
        catchall_user: User of the built-in catch-all account that takes
            every inbound INVITE whatever its Request-URI user. It shows in the
            Contact of our answers: keep it neutral (no product or host names).
        scanner_user_agents: Lower-case substrings of User-Agent values
            refused as SIP scanners.
        invite_rate: Allowed inbound INVITEs per second per source
            (burst ``invite_burst``); beyond it they are refused. The source is
            the packet's real address (see :class:`IncomingCall`), never a header.
        invite_rate_total: Allowed inbound INVITEs per second from all sources
            together (burst 2×): what a flood from many addresses meets.
        failure_block_threshold / failure_block_seconds: A source whose INVITEs
            fail this many times in a row (refused, malformed, scanner) is refused
            outright for this long. Sources in ``failure_block_exempt`` (CIDRs;
            loopback by default: local tools) are never blocked.
        orphan_grace: Seconds a native call may exist with no application owner
            (e.g. an INVITE the stack itself answered with an error) before it is
            reported (log, :class:`EngineStats`).
        orphan_reap: Also hang such calls up natively. Off: with baresip-python
            0.5.2a3 that aborts the process for calls the stack half-released
            (see :mod:`sipcore.baresip_engine`).
        tcp_max_per_source / tcp_max_total / tcp_idle_timeout: Limits on TCP
            connections to the SIP port (connections carrying a call are kept).
        udp_receive_buffer: SO_RCVBUF of the SIP UDP sockets, bytes.
        jitter_buffer_ms / jitter_buffer_adaptive: The receive jitter buffer's
            (min, max) delay and whether it adapts between them to the jitter it
            measures (else it holds ``min``). Every millisecond of it is added to
            the caller's wait for an answer; the stack's own default (a fixed
            100 ms on loopback) made half of the one-way delay.
        timer_slack_us: Timer slack (Linux) for the stack's threads, in µs. baresip's per-call
            transmit thread polls every 4 ms for a due packet; with 4 ms of slack the kernel
            batches those wake-ups with others: measured with 40 talking calls, the per-call
            audio threads' CPU fell from 27.7 % to 17.5 % of a core and the worker's from
            123 % to 107 %; packets leave up to a few ms later (RFC 3550 jitter at the peer 1.5
            → 3 ms). 0 leaves the kernel's default (50 µs).
        realtime_priority: ``SCHED_RR`` priority (1-99) for the stack's SIP thread (SIP and RTP receive);
            0 keeps normal scheduling. Needs CAP_SYS_NICE or RLIMIT_RTPRIO; without them the engine runs
            normally and logs a warning. Each call's audio threads stay normal, with ``timer_slack_us`` given
            back to them (a real-time thread passes no slack on: `sipcore.threads`).
        public_address: The address put in SDP and Contact (the engine's
            network interface), when it differs from the listen address:
            e.g. a container with host networking on a machine with a
            public IP. None: ``host``, or interface discovery for 0.0.0.0.
    """

    host: str = "127.0.0.1"
    port: int = 5060
    public_address: str | None = None
    rtp_port_min: int = 16000
    rtp_port_max: int = 16999
    max_calls: int = 100
    user_agent: str = "Switchboard"
    rtp_timeout: int = 0
    catchall_user: str = "sip"
    scanner_user_agents: tuple[str, ...] = (
        "friendly-scanner",
        "sipvicious",
        "sipcli",
        "sip-scan",
        "sipsak",
        "sundayddr",
        "iwar",
        "vaxasip",
        "pplsip",
    )
    invite_rate: float = 20.0
    invite_burst: int = 40
    invite_rate_total: float = 200.0
    failure_block_threshold: int = 20
    failure_block_seconds: float = 300.0
    failure_block_exempt: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    orphan_grace: float = 2.0
    orphan_reap: bool = False
    tcp_max_per_source: int = 32
    tcp_max_total: int = 512
    tcp_idle_timeout: float = 30.0
    udp_receive_buffer: int = 4 * 1024 * 1024
    jitter_buffer_ms: tuple[int, int] = (10, 300)
    jitter_buffer_adaptive: bool = True
    timer_slack_us: int = 4000
    realtime_priority: int = 0


@dataclass(frozen=True)
class AccountConfig:
    """One SIP trunk / identity.

    Attributes:
        user: User part of our address-of-record (``sip:user@domain``).
        domain: Registrar / carrier as ``host`` or ``host:port``.
        password: Digest password ('' for IP-authenticated trunks).
        auth_user: Digest username when it differs from ``user``.
        realm: Expected digest realm. Informational: the engine answers
            whatever realm the server challenges with.
        outbound_proxy: ``host[:port]`` or ``sip:`` URI every request goes through.
        transport: ``udp``, ``tcp`` or ``tls``.
        register: Send REGISTER (and keep it refreshed).
        expires: Registration interval in seconds.
        codecs: Codec preference (engine names, e.g. ``pcmu``, ``pcma``).
        from_domain: Host for the From header of calls through this account
            (``sip:user@from_domain``) when the carrier wants one other than
            ``domain``; requests still go to ``outbound_proxy`` or ``domain``.
    """

    user: str
    domain: str
    password: str = ""
    auth_user: str | None = None
    realm: str | None = None
    outbound_proxy: str | None = None
    transport: Transport = "udp"
    register: bool = False
    expires: int = 600
    codecs: tuple[str, ...] = ("pcmu", "pcma")
    from_domain: str | None = None


class RegistrationState(enum.Enum):
    UNREGISTERED = "unregistered"
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"


@dataclass(frozen=True)
class RegistrationStatus:
    """Snapshot of one account's registration.

    Attributes:
        state: Current state.
        sip_status: Last SIP status from the registrar (e.g. 200, 401, 403), None if none.
        error: Last error text ('' when healthy).
        expires_at: Unix time the binding lapses (None unless registered).
        attempts: Consecutive failed attempts (drives the retry backoff).
        next_retry_at: Unix time of the next retry after a failure.
    """

    state: RegistrationState
    sip_status: int | None = None
    error: str = ""
    expires_at: float | None = None
    attempts: int = 0
    next_retry_at: float | None = None


@dataclass(frozen=True, eq=False)
class AccountHandle:
    """Opaque reference to an account returned by :meth:`Engine.add_account`."""

    id: int
    config: AccountConfig


RegistrationCallback = Callable[[AccountHandle, RegistrationStatus], None]


# --------------------------------------------------------------------------- calls


@dataclass(frozen=True)
class IncomingCall:
    """What the engine knows about an inbound INVITE, for routing.

    Attributes:
        call: The call object; the handler answers or rejects it.
        engine_call_id: The engine's id for the call.
        sip_call_id: The SIP Call-ID header.
        request_user: User to route by. See the engine implementation
            for how it is obtained (baresip cannot see the Request-URI and
            reports the To user, which equals the Request-URI user on an
            initial INVITE unless a proxy rewrote the Request-URI).
        to_user: User part of the To header.
        from_user / from_uri / from_display: The caller.
        source_host / source_port: Where the INVITE really came from: the packet's
            source address as the socket saw it (``source_verified``). None when the
            engine could not observe it — never the caller-written Via.
        source_transport: udp / tcp / tls, when known.
        via_host: The host the top Via claims (informational only: callers write it).
        user_agent: The caller's User-Agent header, if any.
        account: The account the INVITE arrived on (None: catch-all).
    """

    call: Call
    engine_call_id: str
    sip_call_id: str | None
    request_user: str
    to_user: str
    from_user: str
    from_uri: str
    from_display: str
    source_host: str | None
    source_port: int | None
    user_agent: str | None
    account: AccountHandle | None = None
    source_transport: str | None = None
    source_verified: bool = False
    via_host: str | None = None


@dataclass(frozen=True)
class RefusedCall:
    """An inbound INVITE the engine refused before the application handler ran.

    Delivered to the refused-call callback so that no call is lost silently.
    ``desired_status`` is what we wanted to answer; ``sent_status`` is what
    the engine could actually put on the wire.
    """

    incoming: IncomingCall
    desired_status: int
    sent_status: int
    reason: str  # "draining", "over_capacity", "scanner", "rate_limited", "handler_error"


IncomingHandler = Callable[[IncomingCall], Awaitable[None]]
RefusedCallback = Callable[[RefusedCall], None]


@dataclass(frozen=True)
class EngineStats:
    """The engine's real capacity, as opposed to what the application tracks.

    Attributes:
        native_calls: Calls the native stack holds (None: unknown); each costs a call slot,
            sockets and RTP ports whether or not the application knows it.
        application_calls: Calls with an application owner (a :class:`Call` object).
        max_calls: The configured limit.
        orphans_pending: Native calls with no owner for longer than the grace period: capacity
            the application cannot use (the health check reports it).
        orphans_reaped: Native calls freed because nobody owned them (since start).
        invites_refused: Inbound INVITEs refused by the engine's own protection (since start).
        malformed_rejected: Malformed INVITEs answered 400 before the stack saw them (since start).
        sources_blocked: Source addresses currently blocked after repeated failures.
        tcp_connections: Established TCP connections on the SIP port at the last sweep.
        tcp_closed: TCP connections closed by the limits (since start).
        source_verified: Whether the real packet source of INVITEs is observed.
        listening: Addresses the SIP sockets are really bound to ("udp 127.0.0.1:5060"...).
        realtime: The stack's SIP thread runs SCHED_RR (``EngineConfig.realtime_priority``, when permitted).
    """

    native_calls: int | None
    application_calls: int
    max_calls: int
    orphans_pending: int = 0
    orphans_reaped: int = 0
    invites_refused: int = 0
    malformed_rejected: int = 0
    sources_blocked: int = 0
    tcp_connections: int = 0
    tcp_closed: int = 0
    source_verified: bool = False
    listening: tuple[str, ...] = ()
    realtime: bool = False


class Call(abc.ABC):
    """One call, either direction. Created by the engine, never by applications.

    Events are delivered in order on the engine's loop through
    :meth:`events`; :class:`CallEnded` is always the last one.
    PCM is int16 mono at :attr:`sample_rate` (the negotiated codec's rate:
    8000 for G.711, 16000 for G.722) — resample in the application.
    """

    id: str
    direction: Direction

    @property
    @abc.abstractmethod
    def sip_call_id(self) -> str | None:
        """The SIP Call-ID of the dialog (known once the INVITE is built)."""

    @property
    @abc.abstractmethod
    def answered(self) -> bool: ...

    @property
    @abc.abstractmethod
    def end(self) -> CallEnd | None:
        """How the call ended; None while it lives."""

    @property
    @abc.abstractmethod
    def desired_reject_status(self) -> int | None:
        """The status passed to :meth:`reject` (may differ from what went on the wire)."""

    # --- control
    @abc.abstractmethod
    async def answer(self) -> None:
        """Answer an inbound call (200 OK)."""

    @abc.abstractmethod
    async def reject(self, status: int = 486, reason: str = "") -> None:
        """Refuse an inbound call with ``status`` (see the engine for what it can send)."""

    @abc.abstractmethod
    async def hangup(self) -> None:
        """End the call in any state (BYE, CANCEL or reject). Idempotent."""

    @abc.abstractmethod
    async def send_dtmf(self, digits: str) -> None:
        """Send DTMF (RFC 4733 telephone-events); returns when all digits went out."""

    @abc.abstractmethod
    async def transfer(self, target: str, outcome_timeout: float = 30.0) -> None:
        """Blind transfer (REFER). On success the call ends; on failure raises
        :class:`sipcore.errors.TransferError` and the call continues."""

    @abc.abstractmethod
    async def hold(self, on: bool = True) -> None:
        """Put the call on hold (re-INVITE sendonly) or resume it."""

    # --- outcome
    @abc.abstractmethod
    async def wait_answered(self) -> None:
        """Wait until answered; raises :class:`sipcore.errors.DialFailed` (with the
        :class:`CallEnd`) if the call ends first."""

    @abc.abstractmethod
    async def wait_ended(self) -> CallEnd: ...

    @abc.abstractmethod
    def events(self) -> AsyncIterator[CallEvent]:
        """Async iterator of this call's events, ending after :class:`CallEnded`.
        One consumer per call."""

    # --- media (safe to call from the media tick; never block)
    @property
    @abc.abstractmethod
    def sample_rate(self) -> int:
        """PCM rate in Hz; 0 until media is up."""

    @abc.abstractmethod
    def read_pcm(self) -> np.ndarray:
        """All received PCM since the last read as int16 (possibly empty). Never blocks,
        never raises once the call ends (returns an empty array)."""

    @abc.abstractmethod
    def write_pcm(self, pcm: np.ndarray) -> int:
        """Queue int16 PCM for transmission; returns samples accepted (0 when no media)."""

    @abc.abstractmethod
    def flush_tx(self) -> None:
        """Drop queued transmit audio (barge-in)."""

    @property
    @abc.abstractmethod
    def tx_buffered(self) -> int:
        """Samples written but not yet transmitted."""

    @abc.abstractmethod
    def rtp_stats(self) -> RtpStats: ...


class Engine(abc.ABC):
    """A SIP user agent server + client bound to one listen address."""

    @abc.abstractmethod
    async def start(self, config: EngineConfig) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None:
        """Hang up every call, unregister every account, release the stack."""

    @abc.abstractmethod
    async def drain(self) -> None:
        """Refuse new inbound INVITEs and dials from now on; live calls continue.
        Returns immediately; see :meth:`wait_idle`."""

    @abc.abstractmethod
    async def wait_idle(self, max_wait: float | None = None) -> bool:
        """Wait until no call is live; returns False on timeout."""

    @property
    @abc.abstractmethod
    def draining(self) -> bool: ...

    @property
    @abc.abstractmethod
    def active_call_count(self) -> int: ...

    @property
    @abc.abstractmethod
    def listen_address(self) -> tuple[str, int]: ...

    def stats(self) -> EngineStats:
        """Native versus application call counts and protection counters."""
        return EngineStats(native_calls=None, application_calls=self.active_call_count, max_calls=0)

    # --- accounts
    @abc.abstractmethod
    async def add_account(self, config: AccountConfig) -> AccountHandle:
        """Create an account; with ``register`` set, registration starts in the
        background and retries with backoff (observe via :meth:`on_registration`)."""

    @abc.abstractmethod
    async def remove_account(self, handle: AccountHandle) -> None: ...

    @abc.abstractmethod
    def registration(self, handle: AccountHandle) -> RegistrationStatus: ...

    @abc.abstractmethod
    def on_registration(self, callback: RegistrationCallback) -> None:
        """Call ``callback(handle, status)`` on every registration state change."""

    # --- inbound
    @abc.abstractmethod
    def set_incoming_handler(self, handler: IncomingHandler | None) -> None:
        """Route inbound calls: ``await handler(incoming)`` must answer or reject
        ``incoming.call``; if it returns without doing either, or raises, the call
        is rejected (desired status 500)."""

    @abc.abstractmethod
    def on_refused(self, callback: RefusedCallback | None) -> None:
        """Report INVITEs refused by the engine itself (drain, capacity, protection)."""

    # --- outbound
    @abc.abstractmethod
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
        """Send an INVITE; returns the call at once (await ``wait_answered``).

        Args:
            uri: ``sip:user@host[:port]`` target.
            account: Trunk to dial through (its credentials answer 401/407, its
                outbound proxy is used); None dials from the catch-all identity.
            from_user: Caller-ID user for the From header (see engine notes).
            headers: Extra INVITE headers.
            answer_timeout: Seconds from dial to answer before we CANCEL → NO_ANSWER.
            setup_timeout: Seconds to wait for any sign of life (180/183/answer)
                before declaring the destination unreachable.

        Raises:
            DialRefused: draining, over capacity, bad URI or no route.
        """

