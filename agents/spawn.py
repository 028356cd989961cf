"""Short-lived programs on a call's real-time path (a sentence's synthesis), started without stalling the loop.

uvloop (the server's event loop) starts every subprocess through libuv, which ``fork()``s: copying the page
tables of a worker holding hundreds of MB and a few hundred threads took ~16 ms of the event loop per
start here, and blocks every other thread's page faults meanwhile. The standard library's ``subprocess``
uses ``vfork()`` when it needs no ``preexec_fn`` (1.5 ms). So the program is started by ``subprocess.Popen``
(tied to the server by `agents.childproc.tied_command`) and its pipes are read and written through the
running loop; its exit status is collected off the loop once its output has ended.

Its output comes through socket pairs, not pipes: uvloop's ``connect_read_pipe`` closes a pipe's descriptor in
libuv and then closes the file object given to it, the same number a second time (``close(n) = 0`` then
``close(n) = EBADF`` in strace). Between the two, any other thread may have been given that number (the SIP
stack's RTP socket, a recording's file), and the second close takes it from them. A socket given to
``connect_accepted_socket`` is detached by uvloop and closed once by asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import shutil
import socket
import subprocess
from collections.abc import Sequence

from agents.childproc import tied_command


class Child:
    """A started program: `stdout` and `stderr` are asyncio stream readers; `wait()`; `kill()`."""

    def __init__(self, proc: subprocess.Popen[bytes], stdout: asyncio.StreamReader,
                 stderr: asyncio.StreamReader, transports: list[asyncio.BaseTransport]) -> None:
        self.proc, self.stdout, self.stderr = proc, stdout, stderr
        self._transports = transports

    @classmethod
    async def start(cls, argv: Sequence[str], stdin_data: bytes) -> Child:
        """Start ``argv`` with ``stdin_data`` as its whole input (small: it fits the pipe; the program's
        stdin is then closed). Raises OSError when the program cannot be started — FileNotFoundError when it
        is not there, checked first: under ``setpriv`` a missing program would only be an exit status."""
        if shutil.which(argv[0]) is None:
            raise FileNotFoundError(errno.ENOENT, "program not found", argv[0])
        loop = asyncio.get_running_loop()
        cmd, spawn = tied_command(argv)
        ends = [socket.socketpair() for _ in range(2)]  # (ours, the program's) for stdout, stderr
        try:
            proc = subprocess.Popen(  # noqa: ASYNC220 - vfork, ~1.5 ms: the point of this module (see above)
                cmd, stdin=subprocess.PIPE, stdout=ends[0][1].fileno(), stderr=ends[1][1].fileno(), **spawn)
        except BaseException:
            for pair in ends:
                for end in pair:
                    end.close()
            raise
        for _, theirs in ends:
            theirs.close()
        assert proc.stdin
        transports: list[asyncio.BaseTransport] = []
        try:
            with proc.stdin:
                proc.stdin.write(stdin_data)
            readers = []
            for ours, _ in ends:
                reader = asyncio.StreamReader(limit=1 << 20)
                protocol = asyncio.StreamReaderProtocol(reader)
                transport, _ = await loop.connect_accepted_socket(lambda p=protocol: p, ours)  # type: ignore[misc]
                transports.append(transport)
                readers.append(reader)
        except BaseException:
            proc.kill()
            for t in transports:
                t.close()
            for ours, _ in ends[len(transports):]:
                ours.close()
            await asyncio.to_thread(proc.wait)
            raise
        return cls(proc, readers[0], readers[1], transports)

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    async def wait(self) -> int:
        """The exit status (collected on a thread: the program has normally exited by the end of output)."""
        code = self.proc.poll()
        if code is None:
            code = await asyncio.to_thread(self.proc.wait)
        self._close()
        return code

    async def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        await self.wait()

    def _close(self) -> None:
        for t in self._transports:
            t.close()
        self._transports.clear()
