"""Short-lived programs on a call's real-time path (a sentence's synthesis), started without stalling the loop.

uvloop (the server's event loop) starts every subprocess through libuv, which ``fork()``s: copying the page
tables of a worker holding hundreds of MB and a few hundred threads took ~16 ms of the event loop per
start here, and blocks every other thread's page faults meanwhile. The standard library's ``subprocess``
uses ``vfork()`` when it needs no ``preexec_fn`` (1.5 ms). So the program is started by ``subprocess.Popen``
(tied to the server by `agents.childproc.tied_command`) and its pipes are read and written through the
running loop; its exit status is collected off the loop once its output has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import shutil
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
        proc = subprocess.Popen(  # noqa: ASYNC220 - vfork, ~1.5 ms: the point of this module (see above)
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            **spawn)
        assert proc.stdin and proc.stdout and proc.stderr
        transports: list[asyncio.BaseTransport] = []
        try:
            with proc.stdin:
                proc.stdin.write(stdin_data)
            readers = []
            for pipe in (proc.stdout, proc.stderr):
                reader = asyncio.StreamReader(limit=1 << 20)
                protocol = asyncio.StreamReaderProtocol(reader)
                transport, _ = await loop.connect_read_pipe(lambda p=protocol: p, pipe)  # type: ignore[misc]
                transports.append(transport)
                readers.append(reader)
        except BaseException:
            proc.kill()
            for t in transports:
                t.close()
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
