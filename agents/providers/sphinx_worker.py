"""pocketsphinx in a child process.

pocketsphinx holds Python's global interpreter lock for a whole decode (measured: 4.2 s decoding 18 s of
audio, the event loop woke twice, 643 ms apart). Run in one of the server's threads it would stall the
event loop and the shared media tick, so every decoder lives in its own process and `RemoteDecoder`
forwards the few decoder calls the STT uses over a pipe; the thread waiting on the pipe holds no lock.
Processes are spawned (not forked): the server has native SIP/RTP threads.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from agents.childproc import interrupts_blocked


@dataclass(frozen=True, slots=True)
class Hyp:
    hypstr: str


@dataclass(frozen=True, slots=True)
class Seg:
    word: str
    start_frame: int
    end_frame: int


_METHODS = frozenset({"start_utt", "end_utt", "process_raw", "lookup_word", "add_jsgf_string", "activate_search",
                      "remove_search"})


def _serve(conn: Connection, config: dict[str, Any], parent_pid: int) -> None:
    """The child process: one decoder, one request at a time. It dies with the server, ignores the
    terminal's Ctrl-C (the server closes it) and runs below the server's priority (nice 10, idle I/O):
    the media tick wins every contest for a core; under overload the conversation sheds or degrades
    recognition (agents/stt_load.py) instead of letting audio slip."""
    from agents.childproc import harden, leave_interrupts_to_parent

    harden(parent_pid)
    leave_interrupts_to_parent()
    try:
        import pocketsphinx

        decoder = pocketsphinx.Decoder(**config)
    except Exception as exc:  # reported to the parent, which raises it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ok", None))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        name, args = message
        try:
            if name == "hyp":
                h = decoder.hyp()
                result: Any = Hyp(h.hypstr) if h is not None else None
            elif name == "seg":
                result = [Seg(s.word, s.start_frame, s.end_frame) for s in decoder.seg()]
            elif name in _METHODS:
                result = getattr(decoder, name)(*args)
            else:
                raise AttributeError(name)
            conn.send(("ok", result))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class RemoteDecoder:
    """A pocketsphinx.Decoder in a child process, with the methods the STT uses. Blocking: call it from
    an executor thread (it only waits on a pipe, without the GIL)."""

    def __init__(self, config: dict[str, Any]) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, config, os.getpid()),
                                 name="pocketsphinx", daemon=True)
        with interrupts_blocked():  # a Ctrl-C while the child starts must not kill it mid-import
            self._proc.start()
        child.close()
        self._lock = threading.Lock()
        status, detail = self._conn.recv()
        if status != "ok":
            self.close()
            raise RuntimeError(f"pocketsphinx decoder failed to start: {detail}")

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def _call(self, name: str, *args: Any) -> Any:
        with self._lock:
            try:
                self._conn.send((name, args))
                status, result = self._conn.recv()
            except (EOFError, OSError, BrokenPipeError) as exc:
                raise RuntimeError(f"pocketsphinx process {self._proc.pid} is gone") from exc
        if status != "ok":
            raise RuntimeError(result)
        return result

    def start_utt(self) -> None:
        self._call("start_utt")

    def end_utt(self) -> None:
        self._call("end_utt")

    def process_raw(self, data: bytes, no_search: bool = False, full_utt: bool = False) -> Any:
        return self._call("process_raw", data, no_search, full_utt)

    def hyp(self) -> Hyp | None:
        return self._call("hyp")

    def seg(self) -> list[Seg]:
        return self._call("seg")

    def lookup_word(self, word: str) -> str | None:
        return self._call("lookup_word", word)

    def add_jsgf_string(self, name: str, jsgf: str) -> None:
        self._call("add_jsgf_string", name, jsgf)

    def activate_search(self, name: str | None = None) -> None:
        self._call("activate_search", *([name] if name is not None else []))

    def remove_search(self, name: str) -> None:
        self._call("remove_search", name)

    def close(self) -> None:
        try:
            self._conn.send(None)
        except (OSError, BrokenPipeError):
            pass
        self._proc.join(1.0)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(1.0)
        self._conn.close()
