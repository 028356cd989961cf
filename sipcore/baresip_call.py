"""The baresip-python implementation of :class:`sipcore.engine.Call`.

Gotchas handled here (LAB.md):
- ``answer(video=True)``: a plain answer makes this baresip version send an
  unrequested re-INVITE ~150 ms after the ACK on audio-only calls; offering
  to accept video (which an audio-only offer cannot take up) avoids it. An
  offer that does carry video is answered ``video=False`` (the video stream
  is refused, port 0): the server never takes up or advertises video.
- Inbound rejection goes out as 486 whatever status is asked for; the
  desired status is kept in :attr:`desired_reject_status` and in the
  :class:`CallEnd` so the application records what it meant.
- BYE and CANCEL both close with "Connection reset by peer [104]": who hung
  up and whether it was a cancel is derived from our own state instead.
- ``read()`` may raise ``AudioRestarted`` (renegotiation, call end) or
  ``AudioNotActive``: :meth:`read_pcm` / :meth:`write_pcm` absorb both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from sipcore import causes
from sipcore.baresip_audio import AudioPort
from sipcore.causes import CallStatus
from sipcore.engine import (
    Call,
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
from sipcore.errors import CallCanceled, EngineError, TransferError, dial_failure

if TYPE_CHECKING:  # the engine library is imported only by the engine modules
    import baresip

logger = logging.getLogger(__name__)

_TRANSFER_OK = "Call transfered"  # the stack's spelling
_RTP_TIMEOUT = "rtp stream error"
_CLOSE_GRACE = 5.0


def _split_status(text: str) -> tuple[int | None, str]:
    head, _, tail = text.partition(" ")
    if len(head) == 3 and head.isdigit():
        return int(head), tail
    return None, text


class BaresipCall(Call):
    """Wraps one ``baresip.Call``; state advances only from stack events."""

    def __init__(
        self,
        native: baresip.Call,
        direction: Direction,
        *,
        on_end: Callable[[BaresipCall], None],
        errors: Any,
    ) -> None:
        self._native = native
        self._audio = AudioPort(native.handle)  # the media tick's fast path to the call's PCM
        self._errs = errors  # the baresip.errors module, passed in by the engine
        self.id = f"{native.handle:x}"
        self.direction = direction
        self._on_end = on_end
        self._queue: asyncio.Queue[CallEvent] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        self._answered_fut: asyncio.Future[Any] = loop.create_future()
        self._ended_fut: asyncio.Future[Any] = loop.create_future()  # a CallEnd
        self._sign_of_life = asyncio.Event()
        self._answered_at: float | None = None
        self._rang = False
        self._local_end: str | None = None  # hangup | reject | no_answer | setup_timeout | shutdown
        self._desired_status: int | None = None
        self._end: CallEnd | None = None
        self._last_rtcp: Any = None
        self._seen_call_id: str | None = None  # from stack events (also those replayed before we existed)
        self._close_timer: asyncio.TimerHandle | None = None
        self.offer_has_video = False  # set by the engine from the INVITE's SDP
        native.on(self._on_event)
        native.on_dtmf(self._on_dtmf)
        native.on_rtcp(self._on_rtcp)

    # ------------------------------------------------------------------ properties
    @property
    def sip_call_id(self) -> str | None:
        # The library learns the Call-ID from the events it sees itself; on a dial the first ones
        # (CALL_OUTGOING...) reach the loop before its Call exists and are only replayed to us.
        return self._native.call_id or self._seen_call_id

    @property
    def answered(self) -> bool:
        return self._answered_at is not None

    @property
    def end(self) -> CallEnd | None:
        return self._end

    @property
    def desired_reject_status(self) -> int | None:
        return self._desired_status

    @property
    def native_handle(self) -> int:
        return self._native.handle

    # ------------------------------------------------------------------ control
    async def answer(self) -> None:
        """Answer; raises :class:`CallCanceled` if the caller canceled first (a CANCEL racing our answer
        is the caller's decision, not an engine failure)."""
        if self._end is not None:
            if self._end.status is CallStatus.CANCELED:
                raise CallCanceled(self._end)
            raise EngineError("call already ended")
        try:
            # gotcha: video=True avoids the unrequested re-INVITE on audio-only offers; a video offer is
            # answered without video
            await self._native.answer(video=not self.offer_has_video)
        except self._errs.BaresipError as exc:
            # The stack refuses to answer a call the caller just canceled, and its CLOSED event may still
            # be on its way: give it a moment to arrive before calling this a failure.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._ended_fut), 1.0)
            if self._end is not None and self._end.status is CallStatus.CANCELED:
                raise CallCanceled(self._end) from exc
            raise EngineError(f"answer failed: {exc}") from exc

    async def reject(self, status: int = 486, reason: str = "") -> None:
        if self._end is not None or self.answered:
            return
        self._desired_status = status
        self._local_end = "reject"
        with contextlib.suppress(self._errs.StaleHandleError):
            await self._native.reject()  # always 486 on the wire in this version
        self._arm_close_timer()

    async def hangup(self) -> None:
        if self._end is not None:
            return
        if self._local_end is None:
            self._local_end = "hangup"
        with contextlib.suppress(self._errs.StaleHandleError):
            await self._native.hangup()
        self._arm_close_timer()

    async def _hangup_as(self, why: str) -> None:
        self._local_end = why
        await self.hangup()

    async def send_dtmf(self, digits: str) -> None:
        try:
            await self._native.send_dtmf(digits)
        except ValueError:
            raise
        except self._errs.BaresipError as exc:
            raise EngineError(f"DTMF failed: {exc}") from exc

    async def transfer(self, target: str, outcome_timeout: float = 30.0) -> None:
        previous, self._local_end = self._local_end, "transfer"  # success closes the call
        try:
            await self._native.transfer(target, timeout=outcome_timeout)
        except self._errs.TransferFailed as exc:
            self._local_end = previous
            raise TransferError(str(exc), sip_status=exc.status) from exc
        except self._errs.BaresipError as exc:
            self._local_end = previous
            raise TransferError(str(exc)) from exc

    async def hold(self, on: bool = True) -> None:
        try:
            await (self._native.hold() if on else self._native.resume())
        except self._errs.BaresipError as exc:
            raise EngineError(f"hold failed: {exc}") from exc

    # ------------------------------------------------------------------ outcome
    async def wait_answered(self) -> None:
        done, _ = await asyncio.wait(
            {self._answered_fut, self._ended_fut}, return_when=asyncio.FIRST_COMPLETED
        )
        if self._answered_fut in done and self._answered_fut.done():
            return
        raise dial_failure(self._ended_fut.result())

    async def wait_ended(self) -> CallEnd:
        return await asyncio.shield(self._ended_fut)

    async def events(self) -> AsyncIterator[CallEvent]:
        while True:
            event = await self._queue.get()
            yield event
            if isinstance(event, CallEnded):
                return

    async def supervise_outbound(self, answer_timeout: float, setup_timeout: float) -> None:
        """Enforce the setup (no sign of life) and answer timeouts of a dial."""
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._sign_of_life.wait(), setup_timeout)
        except TimeoutError:
            if self._end is None:
                await self._hangup_as("setup_timeout")
            return
        remaining = max(0.0, answer_timeout - (time.monotonic() - started))
        done, _ = await asyncio.wait({self._answered_fut, self._ended_fut}, timeout=remaining)
        if not done and self._end is None:
            await self._hangup_as("no_answer")

    # ------------------------------------------------------------------ media
    @property
    def sample_rate(self) -> int:
        try:
            return int(self._native.audio.info().rx_sample_rate)
        except self._errs.BaresipError:
            return 0

    def read_pcm(self) -> np.ndarray:
        return self._audio.read()

    def write_pcm(self, pcm: np.ndarray) -> int:
        return self._audio.write(pcm)

    def flush_tx(self) -> None:
        self._audio.flush_tx()

    @property
    def tx_buffered(self) -> int:
        return self._audio.tx_buffered()

    def rtp_stats(self) -> RtpStats:
        stats = self._native.final_stats or self._last_rtcp
        if stats is None:
            return RtpStats()
        return RtpStats(
            rx_packets=stats.rx_packets,
            tx_packets=stats.tx_packets,
            rx_lost=stats.rx_lost,
            rx_jitter_ms=stats.rx_jitter_ms,
            tx_lost=stats.tx_lost,
            rtt_ms=stats.rtt_ms,
        )

    # ------------------------------------------------------------------ events (loop thread)
    def replay(self, events: list[Any]) -> None:
        """Feed events that reached the loop before this call existed.

        Gotcha: on loopback a peer's 180/200 can be dispatched before
        ``ua.dial()`` returns the library's Call, which then never sees them
        (its own state stays OUTGOING). The engine buffers such events and
        replays them here, fixing the library object's state as well.
        """
        states = type(self._native.state)
        for event in events:
            name = event.event.name
            if name == "CALL_ESTABLISHED":
                self._native._state = states.ESTABLISHED
            elif name == "CALL_CLOSED":
                self._native._state = states.CLOSED
                self._native._close_reason = event.text
            self._on_event(event)

    def _on_rtcp(self, stats: Any) -> None:
        self._last_rtcp = stats

    def _on_dtmf(self, event: Any) -> None:
        if self._end is None:
            self._queue.put_nowait(DtmfReceived(event.digit, event.duration_ms))

    def _on_event(self, event: Any) -> None:
        if self._seen_call_id is None and getattr(event, "call_id", None):
            self._seen_call_id = event.call_id
        name = event.event.name
        if name in ("CALL_RINGING", "CALL_PROGRESS"):
            self._sign_of_life.set()
            if not self._rang and self.direction is Direction.OUTBOUND:
                self._rang = True
                self._queue.put_nowait(CallRinging())
        elif name == "CALL_ESTABLISHED" and self._answered_at is None:
            self._sign_of_life.set()
            self._answered_at = time.monotonic()
            if not self._answered_fut.done():
                self._answered_fut.set_result(None)
            self._queue.put_nowait(CallAnswered())
        elif name == "CALL_CLOSED":
            self._finish(self.classify(event.text or ""))

    def _arm_close_timer(self) -> None:
        # The stack may have dropped the call without a CLOSED event (stale handle).
        if self._close_timer is None and self._end is None:
            loop = asyncio.get_running_loop()
            self._close_timer = loop.call_later(_CLOSE_GRACE, lambda: self._finish(self.classify("")))

    def force_end(self, why: str) -> None:
        """Engine shutdown: end the call locally if the stack said nothing."""
        self._local_end = self._local_end or why
        self._finish(self.classify(""))

    def _finish(self, end: CallEnd) -> None:
        if self._end is not None:
            return
        self._end = end
        self._sign_of_life.set()
        if self._close_timer is not None:
            self._close_timer.cancel()
        self._ended_fut.set_result(end)
        self._queue.put_nowait(CallEnded(end))
        try:
            self._on_end(self)
        except Exception:
            logger.exception("on_end callback raised")

    # ------------------------------------------------------------------ classification
    def classify(self, text: str) -> CallEnd:
        """Turn the stack's close text plus our own state into a :class:`CallEnd`."""
        answered = self._answered_at is not None
        duration = time.monotonic() - self._answered_at if self._answered_at else 0.0
        local = self._local_end
        status_code, _ = _split_status(text)

        def end(status: CallStatus, cause: str, sip: int | None, by: HangupBy) -> CallEnd:
            return CallEnd(status, cause, sip, text or (local or ""), by, answered, duration)

        if local == "shutdown":
            status = CallStatus.COMPLETED if answered else CallStatus.FAILED
            return end(status, causes.SYSTEM_SHUTDOWN, None, HangupBy.SYSTEM)
        if answered:
            if text == _RTP_TIMEOUT:
                return end(CallStatus.COMPLETED, causes.MEDIA_TIMEOUT, None, HangupBy.SYSTEM)
            by = HangupBy.LOCAL if local in ("hangup", "transfer") else HangupBy.REMOTE
            return end(CallStatus.COMPLETED, causes.NORMAL_CLEARING, None, by)
        if self.direction is Direction.INBOUND:
            if local in ("reject", "hangup"):
                desired = self._desired_status or 486
                return end(CallStatus.FAILED, causes.sip_to_q850(desired), desired, HangupBy.LOCAL)
            return end(CallStatus.CANCELED, causes.ORIGINATOR_CANCEL, 487, HangupBy.REMOTE)
        # outbound, never answered
        if local == "no_answer":
            return end(CallStatus.NO_ANSWER, causes.NO_ANSWER, None, HangupBy.LOCAL)
        if local == "setup_timeout":
            return end(CallStatus.FAILED, causes.RECOVERY_ON_TIMER_EXPIRE, None, HangupBy.LOCAL)
        if local == "hangup":
            return end(CallStatus.CANCELED, causes.ORIGINATOR_CANCEL, None, HangupBy.LOCAL)
        if status_code is not None and status_code >= 300:
            return end(
                causes.sip_to_call_status(status_code),
                causes.sip_to_q850(status_code),
                status_code,
                HangupBy.REMOTE,
            )
        return end(CallStatus.FAILED, causes.DESTINATION_OUT_OF_ORDER, None, HangupBy.SYSTEM)
