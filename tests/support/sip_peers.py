"""Real SIP peers for the sipcore tests: sipp, baresip, kamailio on loopback.

Every peer runs in the foreground under ``timeout`` as an asyncio subprocess
and is killed by its PID in teardown. Ports come from :func:`free_port`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HOST = "127.0.0.1"
SUPPORT = Path(__file__).parent
SCENARIOS = SUPPORT / "scenarios"
_next_port = random.randrange(30000, 50000, 10)


def free_port(span: int = 1) -> int:
    """A UDP+TCP port (and ``span - 1`` after it) free on loopback right now."""
    global _next_port
    while True:
        base = _next_port
        _next_port += max(span, 2) + 2
        if _next_port > 60000:
            _next_port = 30000
        if all(_is_free(base + i) for i in range(span)):
            return base


def _is_free(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                return False
    return True


# --------------------------------------------------------------------------- processes


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str


class Proc:
    """A peer process; ``stop()`` kills it (by PID) and collects its output."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name

    async def wait(self, limit: float) -> Result:
        out, err = await asyncio.wait_for(self.proc.communicate(), limit)
        return Result(self.proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))

    async def stop(self) -> None:
        """Kill the peer's whole process group (its id is our child's PID, so only
        processes we started): `timeout` does not pass SIGKILL on, and kamailio forks."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.proc.communicate(), 5)


async def spawn(args: list[str], *, cwd: Path, limit: float, name: str) -> Proc:
    proc = await asyncio.create_subprocess_exec(
        "timeout",
        "-s",
        "KILL",
        str(limit),
        *args,
        cwd=str(cwd),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    return Proc(proc, name)


@contextlib.asynccontextmanager
async def running(args: list[str], *, cwd: Path, limit: float, name: str) -> AsyncIterator[Proc]:
    proc = await spawn(args, cwd=cwd, limit=limit, name=name)
    try:
        yield proc
    finally:
        await proc.stop()


# --------------------------------------------------------------------------- sipp


def scenario(name: str, dest: Path, **subst: str) -> Path:
    """Copy scenario ``name`` into ``dest`` replacing ``{{KEY}}`` placeholders."""
    text = (SCENARIOS / name).read_text()
    for key, value in subst.items():
        text = text.replace("{{" + key + "}}", value)
    path = dest / name.replace(".xml", f"-{'-'.join(subst.values()) or 'x'}.xml".replace("/", "_"))
    path.write_text(text)
    return path


def sipp_args(scenario_file: Path | str, port: int, media_port: int, *extra: str) -> list[str]:
    sf = ["-sf", str(scenario_file)] if isinstance(scenario_file, Path) else ["-sn", scenario_file]
    return ["sipp", *sf, "-i", HOST, "-p", str(port), "-mp", str(media_port), "-nostdin", *extra]


def make_tone_wav_ulaw(path: Path, freq: int, seconds: float) -> Path:
    subprocess.run(
        ["sox", "-n", "-r", "8000", "-c", "1", "-e", "u-law", str(path), "synth", str(seconds), "sine", str(freq), "vol", "0.5"],
        check=True,
    )
    return path


def make_tone_wav_pcm(path: Path, freq: int, seconds: float, rate: int = 8000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    data = (np.sin(2 * np.pi * freq * t) * 12000).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.tobytes())
    return path


def tone(freq: float, n: int, rate: int = 8000, amp: int = 10000) -> np.ndarray:
    return (np.sin(2 * np.pi * freq * np.arange(n) / rate) * amp).astype(np.int16)


def dominant_freq(pcm: np.ndarray, rate: int) -> float:
    x = pcm.astype(np.float64)
    x = x - x.mean()
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spec))])


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        if w.getnchannels() > 1:
            data = data[:: w.getnchannels()]
        return data, w.getframerate()


# --------------------------------------------------------------------------- baresip peer


def baresip_peer_dir(base: Path, *, port: int, source_wav: Path, host: str = HOST) -> Path:
    """A baresip softphone config dir (LAB.md recipe) on ``host`` that plays ``source_wav``
    and dumps what it hears into ``base/dump``."""
    conf = base / f"baresip-{port}"
    dump = base / "dump"
    conf.mkdir(parents=True, exist_ok=True)
    dump.mkdir(exist_ok=True)
    (conf / "config").write_text(
        f"""poll_method epoll
sip_listen {host}:{port}
net_interface {host}
module_path /usr/lib/baresip/modules
audio_source aufile,{source_wav}
audio_player aubridge,nil
ausrc_srate 8000
auplay_srate 8000
rtp_ports {port + 2}-{port + 40}
snd_path {dump}
module g711.so
module aufile.so
module aubridge.so
module sndfile.so
module_app account.so
module_app menu.so
"""
    )
    (conf / "accounts").write_text(f"<sip:bs@{host}:{port}>;regint=0;audio_codecs=PCMU;answermode=auto\n")
    (conf / "contacts").write_text("")
    return conf


def baresip_available() -> bool:
    return shutil.which("baresip") is not None


# --------------------------------------------------------------------------- raw SIP


def options_request(port: int, local_port: int, n: int) -> bytes:
    return (
        f"OPTIONS sip:ping@{HOST}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {HOST}:{local_port};branch=z9hG4bK-opt{n}-{os.getpid()}\r\n"
        f"From: <sip:probe@{HOST}:{local_port}>;tag=p{n}\r\n"
        f"To: <sip:ping@{HOST}:{port}>\r\n"
        f"Call-ID: opt{n}-{os.getpid()}@{HOST}\r\n"
        "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


class UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait(data)

    def drain(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()


async def udp_client() -> tuple[UdpClient, int]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(UdpClient, local_addr=(HOST, 0))
    return proto, transport.get_extra_info("sockname")[1]


async def options_ping(client: UdpClient, local_port: int, port: int, n: int, wait: float = 3.0) -> bytes:
    """Send OPTIONS; return the first response whose Call-ID matches."""
    assert client.transport is not None
    client.transport.sendto(options_request(port, local_port, n), (HOST, port))
    deadline = asyncio.get_running_loop().time() + wait
    want = f"opt{n}-{os.getpid()}".encode()
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        data = await asyncio.wait_for(client.queue.get(), max(0.01, remaining))
        if want in data and data.startswith(b"SIP/2.0 "):
            return data
