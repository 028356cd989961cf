"""SIP load benchmark: N concurrent TALKING sipp calls with G.711 μ-law audio against one (or two) Switchboard
workers on this box.

    python -m bench.sip_load [--calls 100] [--seconds 30] [--rate 10] [--audio speech|tone|quiet]
                             [--stt local|cloud] [--workers 1|2] [--idle-seconds 10]

Each worker is the real thing, in a process of its own (spawned; uvloop when installed):
``switchboard.calls.telephony.Telephony`` with the baresip SIP engine, the shared embedded PostgreSQL (pgserver,
migrations and the demo bootstrap done once by the benchmark), inbound routing of ``sip:demo@…``, one call
session per call (call row first, answer, stereo recording, the demo agent's conversation: greeting, speech
to text of every caller turn, the retrieval engine's answer spoken by espeak-ng) and the one shared 20 ms
media tick (batched Silero VAD, endpointing, transmit pacing).

The load (default ``--audio speech``): per worker one ``sipp`` process placing N/workers calls to
sip:demo@127.0.0.1:PORT at ``--rate`` calls/s, each streaming a looped espeak-ng file as 8 kHz μ-law RTP
(50 packets/s) with a talking duty cycle: the caller says a sentence (1.5–3.5 s), then listens 4 s (while
the agent answers), then says the next one. ``--audio tone`` streams a steady tone instead (the VAD never
calls it speech: no speech-to-text work); ``--audio quiet`` only the faint line noise of the listening pauses (the
floor every talking call sits on). ``--stt cloud`` points the demo agent at a Deepgram-protocol
stand-in (bench.standins, its own process, final transcript 150 ms after the voiced audio ends) instead
of the local pocketsphinx recogniser. ``--workers 2`` starts two workers (own SIP/RTP ports, own sipp)
and splits the calls.

Every call holds long enough that all calls are up together for ``--seconds``: the STEADY window, in which
CPU, RSS, frame delivery and STT latency are measured. The idle worker is measured first as a reference.

Definitions (also printed):
- worker CPU % = Δ(user+sys CPU of the worker process — every thread, native baresip ones included — plus
  every process it started: pocketsphinx workers, espeak-ng, …; sipp excluded) / Δwall × 100, i.e. % of
  ONE core. Helpers are listed with their nice value and I/O class (they must run below the worker).
- a tick's lateness = how long after its 20 ms slot (the MediaLoop's own schedule) it started.
- frames on time = 20 ms frames the media tick handed to ``media`` during the steady window, counting
  only ticks that started ≤ 20 ms after their slot, ÷ frames the callers sent in that window.
- STT latency = a recognition stream's flush (end of the caller's turn handed over) → its final transcript,
  for every turn flushed in the steady window; shed turns (the bounded local queue was full) are counted
  apart.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads (as the Makefile exports it)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import csv  # noqa: E402
import io  # noqa: E402
import logging  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import wave  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import psutil  # noqa: E402

from sipcore.threads import AUDIO_THREADS  # noqa: E402

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "tests" / "support" / "scenarios" / "uac_tone.xml"
PERIOD = 0.020
LATE_MS = 15.0  # a tick this late counts against admission (switchboard.calls.overload refuse_ms)
SETTLE = 1.0  # s after the N-th call is on the tick before the steady window opens
TAIL = 4.0  # s of hold after the steady window closes, before the first BYE
RAMP_QUIET = 2.0  # s without a new call on the tick after the ramp's nominal end: the rest were refused
LISTEN_SECONDS = 4.0  # the caller listens this long between sentences (the agent answers meanwhile)
SENTENCES = [
    "Hello, I would like to book a table for two people tomorrow evening.",
    "Yes, that is right.",
    "Could you tell me when the pharmacy opens on Saturday morning?",
    "My account number is four five six seven eight.",
]

log = logging.getLogger("bench.sip_load")


# --------------------------------------------------------------------------- load material


def free_port(span: int = 1, start: int = 0) -> int:
    """A base port with ``span`` consecutive UDP+TCP ports free on loopback right now."""
    rng = np.random.default_rng()
    for _ in range(200):
        base = int(start or rng.integers(20000, 60000 - span)) & ~1
        start = 0
        if all(_is_free(base + i) for i in range(span)):
            return base
    raise RuntimeError(f"no {span} free consecutive ports")


def _is_free(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                return False
    return True


def _ulaw_wav(workdir: Path, name: str, pcm: np.ndarray) -> Path:
    """``pcm`` (8 kHz, clipped to int16) as ``workdir/<name>.wav`` in G.711 μ-law (by sox), what sipp streams."""
    src = workdir / f"{name}16.wav"
    with wave.open(str(src), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.clip(pcm, -32768, 32767).astype("<i2").tobytes())
    dst = workdir / f"{name}.wav"
    subprocess.run(["sox", str(src), "-r", "8000", "-c", "1", "-e", "u-law", str(dst)], check=True)
    return dst


def make_speech_ulaw(workdir: Path) -> Path:
    """An 8 kHz μ-law WAV (~26 s): espeak-ng sentences, each followed by LISTEN_SECONDS of faint noise (the
    caller listening); sipp loops it."""
    from media.resample import Resampler

    rng = np.random.default_rng(1)
    parts = []
    for text in SENTENCES:
        out = subprocess.run(["espeak-ng", "--stdout", text], capture_output=True, check=True).stdout
        with wave.open(io.BytesIO(out)) as w:
            x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16)
            rate = w.getframerate()
        parts.append(Resampler(rate, 8000).process(x))
        parts.append(rng.normal(0, 60, int(LISTEN_SECONDS * 8000)).astype(np.int16))
    pcm = np.concatenate(parts)
    return _ulaw_wav(workdir, "speech", pcm.astype(np.int32) + rng.normal(0, 20, len(pcm)).astype(np.int32))


def make_tone_ulaw(workdir: Path) -> Path:
    """An 8 kHz μ-law WAV (20 s): a steady 440 Hz tone at -16 dBFS over faint noise (no speech for the agent)."""
    rng = np.random.default_rng(2)
    t = np.arange(20 * 8000) / 8000
    pcm = 5000 * np.sin(2 * np.pi * 440 * t) + rng.normal(0, 20, len(t))
    return _ulaw_wav(workdir, "tone", pcm)


def make_quiet_ulaw(workdir: Path) -> Path:
    """An 8 kHz μ-law WAV (20 s) of the line noise a talking caller's pauses have (``make_speech_ulaw``'s listening
    parts): a caller who only listens. Every talking call carries this much work and its speech on top."""
    rng = np.random.default_rng(3)
    n = 20 * 8000
    pcm = rng.normal(0, 60, n) + rng.normal(0, 20, n)
    return _ulaw_wav(workdir, "quiet", pcm)


def caller_priority() -> list[str]:
    """The callers (sipp) stand for phones on other machines: on this box they must not be starved by the worker
    under test, or their audio stalls and comes in bursts that the engine's jitter buffer cannot keep (measured
    here: sipp at nice 0 next to a saturated worker sent nothing for up to 400 ms, then 10x the rate, and about
    15 % of the frames were lost before they reached the worker). So sipp runs in the real-time class
    (SCHED_FIFO 10, a few % of one core) where the box allows it."""
    try:
        ok = subprocess.run(["chrt", "-f", "10", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return ["chrt", "-f", "10"] if ok else []


def write_scenario(workdir: Path, wav: Path, hold_ms: int) -> Path:
    text = SCENARIO.read_text()
    subst = {"TO_USER": "demo", "UA": "sipp-bench", "HOLD_MS": str(hold_ms),
             "MEDIA": f'<exec rtp_stream="{wav.name},-1,0"/>'}
    for key, value in subst.items():
        text = text.replace("{{" + key + "}}", value)
    path = workdir / "uac_bench.xml"
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- measuring


def _rss_kib() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process in KiB."""
    rss = hwm = 0
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def _tree_cpu(proc: psutil.Process | None) -> float:
    """user+sys CPU seconds of a process and its live descendants (0 when gone)."""
    if proc is None:
        return 0.0
    total = 0.0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _helpers(exclude: set[int]) -> dict[int, tuple[str, float, int, str]]:
    """Live processes this worker started (descendants, sipp's tree excluded): pid → (name, CPU s, nice,
    I/O class)."""
    out: dict[int, tuple[str, float, int, str]] = {}
    try:
        procs = psutil.Process().children(recursive=True)
    except psutil.Error:
        return out
    for p in procs:
        if p.pid in exclude:
            continue
        try:
            with p.oneshot():
                t = p.cpu_times()
                io = p.ionice()
                cls = {0: "none", 1: "rt", 2: "best-effort", 3: "idle"}.get(int(io.ioclass), str(io.ioclass))
                if os.sched_getscheduler(p.pid) == os.SCHED_IDLE:
                    cls += ", CPU class SCHED_IDLE"
                cmd = " ".join(p.cmdline())
                name = p.name()
                if "resource_tracker" in cmd:
                    name = "mp-resource-tracker"
                elif "multiprocessing" in cmd:
                    name = f"{name} (spawned helper)"
                out[p.pid] = (name, t.user + t.system, p.nice(), cls)
        except psutil.Error:
            pass
    return out


def _sipp_pids(proc: psutil.Process | None) -> set[int]:
    if proc is None:
        return set()
    try:
        return {proc.pid, *(c.pid for c in proc.children(recursive=True))}
    except psutil.Error:
        return {proc.pid}


class SttTimer:
    """Times every recognition stream's flush → final transcript, in this worker (bench instrumentation of
    agents.providers.base.QueuedSpeechStream, the base of the local and the Deepgram streams)."""

    def __init__(self) -> None:
        self.recording = False
        self.latencies_ms: list[float] = []
        self.flushes = 0
        self.finals = 0

    def install(self) -> None:
        from collections import deque

        from agents.providers.base import QueuedSpeechStream

        timer = self
        flush, iterate = QueuedSpeechStream.flush, QueuedSpeechStream._iter

        def timed_flush(stream: Any) -> None:
            q = stream.__dict__.setdefault("_bench_flushes", deque())
            q.append((time.perf_counter(), timer.recording))
            timer.flushes += timer.recording
            flush(stream)

        async def timed_iter(stream: Any) -> Any:
            async for t in iterate(stream):
                if t.is_final:
                    q = stream.__dict__.get("_bench_flushes")
                    if q:
                        at, counted = q.popleft()
                        if counted:
                            timer.finals += 1
                            timer.latencies_ms.append((time.perf_counter() - at) * 1000.0)
                yield t

        QueuedSpeechStream.flush = timed_flush  # type: ignore[method-assign]
        QueuedSpeechStream._iter = timed_iter  # type: ignore[method-assign]


def _machine_busy() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat: everything but idle and iowait)."""
    with open("/proc/stat") as fh:
        f = [int(x) for x in fh.readline().split()[1:9]]  # user … steal (guest is inside user)
    return (sum(f) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")


def _threads_cpu() -> dict[str, float]:
    """CPU seconds of this process's threads by group: the event loop (tick + sessions), baresip's re
    thread (SIP + RTP receive, jitter buffers, decode), its per-call native audio threads (aumem
    source/player, Audio TX: encode + send), executors and the rest."""
    import threading

    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    me = os.getpid()
    for tid in os.listdir(f"/proc/{me}/task"):
        try:
            with open(f"/proc/{me}/task/{tid}/stat") as fh:
                raw = fh.read()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        f = raw[raw.rindex(")") + 2 :].split()
        group = _thread_group(int(tid) == me, names.get(int(tid)), comm)
        out[group] = out.get(group, 0.0) + (int(f[11]) + int(f[12])) / tick
    return out


def _threads_realtime() -> dict[str, int]:
    """This process's SCHED_RR threads (SWITCHBOARD_REALTIME), counted by group as `_threads_cpu` groups them."""
    import threading

    from switchboard.platform import sched

    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    me = os.getpid()
    out: dict[str, int] = {}
    for tid, (comm, policy) in sched.thread_policies().items():
        if policy == "SCHED_RR":
            group = _thread_group(tid == me, names.get(tid), comm)
            out[group] = out.get(group, 0) + 1
    return out


def _thread_group(main: bool, name: str | None, comm: str) -> str:
    if main:
        return "event loop"
    if name == "baresip-re":
        return "baresip re (SIP/RTP rx)"
    if name is None and comm.startswith(AUDIO_THREADS):
        return "baresip per-call audio"
    if name is not None and name.startswith("stt"):
        return "speech-to-text (pocketsphinx)"
    if name is not None and name.startswith("media-vad"):
        return "VAD (Silero, batched)"
    if name == "recording-writer":
        return "recordings"
    if name is not None and name.startswith(("ThreadPoolExecutor", "asyncio")):
        return "executors"
    return "other"


@dataclass
class Snap:
    wall: float
    cpu: float  # this process, all threads
    children: float  # reaped children (espeak-ng)
    helpers: dict[int, tuple[str, float, int, str]]  # live descendants (pocketsphinx workers…), sipp excluded
    pg: float
    sipp: float
    rss_kib: int
    machine: float  # busy CPU seconds of the whole machine
    by_thread: dict[str, float]
    threads: int
    media: dict[str, float]
    legs: int
    realtime: dict[str, int] = field(default_factory=dict)  # SCHED_RR threads by group


class _RunQueueClock:
    """The calling thread's time spent runnable but waiting for a core (``/proc/thread-self/schedstat``,
    second field, ns); 0 where the kernel does not keep it."""

    def __init__(self) -> None:
        try:
            self._fd: int | None = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        except OSError:
            self._fd = None

    def ns(self) -> int:
        if self._fd is None:
            return 0
        try:
            return int(os.pread(self._fd, 64, 0).split()[1])
        except (OSError, IndexError, ValueError):
            return 0


@dataclass
class Probe:
    """Takes snapshots and records every media tick in the steady window."""

    tel: Any
    pg_proc: psutil.Process | None
    sipp_proc: psutil.Process | None = None
    recording: bool = False
    # lateness, busy, frames, empty, reads, cpu; since the last tick's end: wall, loop CPU, run-queue wait;
    # the I/O half's own run-queue wait
    ticks: list[list[Any]] = field(default_factory=list)
    rss_samples: list[int] = field(default_factory=list)

    def snap(self) -> Snap:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        ch = resource.getrusage(resource.RUSAGE_CHILDREN)
        st = self.tel.media.stats
        rss, _ = _rss_kib()
        return Snap(time.monotonic(), ru.ru_utime + ru.ru_stime, ch.ru_utime + ch.ru_stime,
                    _helpers(_sipp_pids(self.sipp_proc)), _tree_cpu(self.pg_proc),
                    _tree_cpu(self.sipp_proc), rss, _machine_busy(), _threads_cpu(), psutil.Process().num_threads(),
                    {k: float(getattr(st, k)) for k in ("ticks", "late_ticks", "rx_reads", "rx_frames", "rx_empty",
                                                         "busy_seconds", "max_lateness_ms", "vad_jobs",
                                                         "vad_seconds")}
                    | {"vad_dropped_s": self.tel.media.tick.vad_dropped_seconds,
                       "vad_windows": self.tel.media.tick.vad_windows, "vad_silent": self.tel.media.tick.vad_silent},
                    len(self.tel.media.legs),
                    _threads_realtime())

    def instrument(self) -> None:
        """Wrap MediaLoop.begin (a tick's I/O half, on the 20 ms clock: its lateness is MediaLoop's own) and
        MediaLoop.complete (its turn-taking half, when the tick's batched VAD job is done on its own thread)
        to record every tick: lateness, the loop thread's wall and CPU time in both halves, frames read."""
        media = self.tel.media
        begin, complete = media.begin, media.complete
        stats = media.stats
        ticks = self.ticks

        runq = _RunQueueClock()
        gap = [time.perf_counter(), time.thread_time(), runq.ns()]  # the loop thread at the last tick's end

        def timed_begin(now: float) -> Any:
            if not self.recording:
                return begin(now)
            f0, e0, r0 = stats.rx_frames, stats.rx_empty, stats.rx_reads
            c0, u0, q0 = time.perf_counter(), time.thread_time(), runq.ns()
            job = begin(now)
            c1, u1, q1 = time.perf_counter(), time.thread_time(), runq.ns()
            # since the last tick ended: the loop thread's wall time, its CPU (other callbacks), its wait for a
            # core; then the tick's own wait for a core
            ticks.append([media.lateness_ms / 1000, c1 - c0, stats.rx_frames - f0, stats.rx_empty - e0,
                          stats.rx_reads - r0, u1 - u0, c0 - gap[0], u0 - gap[1], (q0 - gap[2]) / 1e9,
                          (q1 - q0) / 1e9])
            gap[0], gap[1], gap[2] = c1, u1, q1
            return job

        def timed_complete(job: Any) -> None:
            c0, u0 = time.perf_counter(), time.thread_time()
            complete(job)
            if self.recording and ticks:  # counted with the latest tick (the job's own, or one after it)
                ticks[-1][1] += time.perf_counter() - c0
                ticks[-1][5] += time.thread_time() - u0

        media.begin = timed_begin  # type: ignore[method-assign]
        media.complete = timed_complete  # type: ignore[method-assign]

    async def sample_rss(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.rss_samples.append(_rss_kib()[0])
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                pass


def _time_split(ticks: list[list[Any]], wall: int, cpu: int, runq: int) -> tuple[np.ndarray, ...]:
    """Columns of the tick records (s) as ms: a stretch of the loop thread's wall time, its CPU in it, its wait
    for a core in it, and the rest (asleep: its poll, or the GIL)."""
    w, c, q = (np.array([t[i] for t in ticks]) * 1000 for i in (wall, cpu, runq))
    return w, c, q, np.maximum(w - c - q, 0.0)


def audio_health(tel: Any) -> dict[str, int]:
    """Sum of the engine's per-call audio counters (bytes) over live calls: receive audio dropped
    because the reader was too slow, transmit frames starved mid-audio."""
    out = {"calls": 0, "rx_discarded": 0, "rx_dropped": 0, "tx_starved_frames": 0}
    for call in tel.engine.calls():
        native = getattr(call, "_native", None)
        if native is None:
            continue
        try:
            st = native.audio.stats()
        except Exception:
            continue
        out["calls"] += 1
        out["rx_discarded"] += st.rx_discarded_bytes
        out["rx_dropped"] += st.rx_dropped_bytes
        out["tx_starved_frames"] += st.tx_starved_frames
    return out


# --------------------------------------------------------------------------- the run


@dataclass
class Result:
    args: argparse.Namespace
    loop_name: str
    idle: tuple[Snap, Snap] | None = None
    ramp: tuple[Snap, Snap] | None = None
    steady: tuple[Snap, Snap] | None = None
    steady_calls: int = 0
    all_up: bool = False
    ticks: list[list[Any]] = field(default_factory=list)  # Probe.ticks
    rss_steady: list[int] = field(default_factory=list)
    peak_rss_kib: int = 0
    health: dict[str, int] = field(default_factory=dict)
    sipp_rc: int | None = None
    sipp_stats: dict[str, str] = field(default_factory=dict)
    sipp_err: str = ""
    db_rows: list[dict[str, Any]] = field(default_factory=list)
    db_metrics: dict[str, float] = field(default_factory=dict)
    turns: dict[str, int] = field(default_factory=dict)
    warnings: int = 0
    run_seconds: float = 0.0
    worker: int = 0
    calls: int = 0  # this worker's share
    stt_latencies_ms: list[float] = field(default_factory=list)
    stt_flushes: int = 0
    stt_finals: int = 0
    overload: dict[str, Any] = field(default_factory=dict)
    steady_wall: tuple[float, float] = (0.0, 0.0)  # time.time() at the steady window's ends
    callers: str = ""  # how sipp ran (caller_priority)


class _Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


class _Once(logging.Filter):
    """Show each distinct warning once (a failing 20 ms tick would otherwise print 50 tracebacks/s)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        if record.name.endswith("stallwatch") and len(self.seen) < 200:
            return True  # every stall and where the loop was stuck (a few per run, not 50/s)
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def share(args: argparse.Namespace, index: int) -> int:
    """Worker ``index``'s share of the calls."""
    return args.calls // args.workers + (index < args.calls % args.workers)


async def run(args: argparse.Namespace, tmp: Path, dsn: str, pg_proc: psutil.Process | None, wav: Path,
              index: int, org_id: Any, agent_id: Any) -> Result:
    from agents.voices import VoiceCatalog
    from store.crypto import SecretBox
    from store.db import create_pool
    from switchboard.calls.telephony import Alias, Telephony
    from switchboard.config import Settings

    loop = asyncio.get_running_loop()
    res = Result(args, f"{type(loop).__module__}.{type(loop).__name__}", worker=index)
    counter = _Counter()
    logging.getLogger().addHandler(counter)
    n, seconds = share(args, index), args.seconds
    res.calls = n
    ramp = n / args.rate
    hold_ms = int((ramp + RAMP_QUIET + SETTLE + seconds + TAIL) * 1000)
    wdir = tmp / f"worker{index}"
    wdir.mkdir(exist_ok=True)
    (wdir / wav.name).symlink_to(wav)
    sf = write_scenario(wdir, wav, hold_ms)
    stt_timer = SttTimer()
    stt_timer.install()
    worker_id = f"bench{index}"

    sip_port = free_port()
    from_env = Settings.from_env()
    rtp_span = max(400, 4 * n + 100)
    rtp_min = free_port(rtp_span)
    settings = Settings(data_dir=tmp, database_url=dsn, sip_host=HOST, sip_port=sip_port, rtp_port_min=rtp_min,
                        rtp_port_max=rtp_min + rtp_span - 1, max_calls=max(200, n + 10), worker_id=worker_id,
                        api_host=HOST, stall_log_ms=from_env.stall_log_ms,  # SWITCHBOARD_STALL_* still apply
                        stall_dump_seconds=from_env.stall_dump_seconds,
                        sip_timer_slack_us=from_env.sip_timer_slack_us,  # and SWITCHBOARD_SIP_TIMER_SLACK_US
                        realtime=from_env.realtime)  # and SWITCHBOARD_REALTIME
    pool = await create_pool(dsn, max_size=10)
    tel = None
    sipp = None
    t_start = time.monotonic()
    try:
        voices = await loop.run_in_executor(None, VoiceCatalog.load_local)
        tel = Telephony(settings, pool, SecretBox(settings.resolved_secret_key()), voices,
                        aliases=[Alias("demo", org_id, agent_id)])
        await tel.start()
        probe = Probe(tel, pg_proc)
        probe.instrument()
        stop_rss = asyncio.Event()
        rss_task = loop.create_task(probe.sample_rss(stop_rss))

        # 1. reference: the idle worker (engine, tick, DB pool up; 0 calls)
        await asyncio.sleep(1.0)
        a = await asyncio.to_thread(probe.snap)
        await asyncio.sleep(args.idle_seconds)
        res.idle = (a, await asyncio.to_thread(probe.snap))

        # 2. the load: sipp in its own process group, bounded by `timeout`
        sipp_port = free_port()
        media_port = free_port(max(64, 4 * n + 16))
        limit = int(ramp + hold_ms / 1000 + 60)
        prio = caller_priority()
        res.callers = "sipp in SCHED_FIFO 10" if prio else "sipp at normal priority (SCHED_FIFO not allowed here)"
        cmd = [*prio, "timeout", "-s", "KILL", str(limit), "sipp", "-sf", str(sf), "-i", HOST, "-p", str(sipp_port),
               "-mp", str(media_port), "-m", str(n), "-l", str(n), "-r", f"{args.rate:g}", "-s", "demo",
               "-recv_timeout", "30000", "-nostdin", "-trace_stat", "-stf", str(wdir / "sipp_stats.csv"),
               "-fd", "1", f"{HOST}:{sip_port}"]
        sipp = await asyncio.create_subprocess_exec(*cmd, cwd=str(wdir), stdin=subprocess.DEVNULL,
                                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                                    start_new_session=True)
        try:
            probe.sipp_proc = psutil.Process(sipp.pid)
        except psutil.Error:
            pass
        r0 = await asyncio.to_thread(probe.snap)

        # 3. ramp: until all N calls are on the media tick, or sipp has placed them all and no more come up
        # (admission refused the rest: the steady window then still gets its full length), or sipp ends
        await ramp_done(lambda: len(tel.media.legs), n, ramp, lambda: sipp.returncode is not None)
        res.all_up = len(tel.media.legs) >= n
        await asyncio.sleep(SETTLE)
        r1 = await asyncio.to_thread(probe.snap)
        res.ramp = (r0, r1)

        # 4. steady window: all calls up, `seconds` long (closes early if a call drops)
        res.steady_calls = len(tel.media.legs)
        probe.recording = stt_timer.recording = True
        s0 = await asyncio.to_thread(probe.snap)
        w0 = time.time()
        await poll(lambda: len(tel.media.legs) < res.steady_calls or sipp.returncode is not None, seconds)
        probe.recording = stt_timer.recording = False
        s1 = await asyncio.to_thread(probe.snap)
        res.steady_wall = (w0, time.time())
        res.stt_latencies_ms, res.stt_flushes, res.stt_finals = list(stt_timer.latencies_ms), stt_timer.flushes, \
            stt_timer.finals
        overload = getattr(tel, "overload", None)
        if overload is not None:
            res.overload = overload.snapshot()
        res.steady = (s0, s1)
        res.health = audio_health(tel)
        res.ticks = probe.ticks
        res.rss_steady = [r for r in probe.rss_samples[-int(2 * (s1.wall - s0.wall)):]] or [s1.rss_kib]

        # 5. let the calls end (BYE), then read sipp's and the database's account of them
        try:
            _, err = await asyncio.wait_for(sipp.communicate(), ramp + hold_ms / 1000 + 40)
            res.sipp_err = err.decode(errors="replace")[-2000:]
        except TimeoutError:
            pass
        res.sipp_rc = sipp.returncode
        await poll(lambda: not tel.sessions, 20)
        stop_rss.set()
        await rss_task
        res.peak_rss_kib = _rss_kib()[1]
        res.sipp_stats = read_sipp_stats(wdir / "sipp_stats.csv")
        rows = await pool.fetch("SELECT status, hangup_cause, disconnection_reason, count(*) AS n FROM calls "
                                "WHERE worker_id = $1 GROUP BY 1, 2, 3 ORDER BY 4 DESC", worker_id)
        res.db_rows = [dict(r) for r in rows]
        m = await pool.fetchrow(
            "SELECT count(*) FILTER (WHERE answered_at IS NOT NULL) AS answered,"
            " coalesce(sum((metrics->>'rx_packets')::bigint), 0) AS rx_packets,"
            " coalesce(sum((metrics->>'packets_lost')::bigint), 0) AS lost,"
            " coalesce(sum((metrics->>'duration_seconds')::float), 0) AS seconds,"
            " coalesce(max((metrics->>'jitter_ms')::float), 0) AS max_jitter FROM calls WHERE worker_id = $1",
            worker_id)
        res.db_metrics = {k: float(v) for k, v in dict(m).items()}
        turns = await pool.fetch("SELECT t.role, count(*) AS n FROM transcript_turns t JOIN calls c ON c.id = t.call_id"
                                 " WHERE c.worker_id = $1 GROUP BY 1 ORDER BY 1", worker_id)
        res.turns = {r["role"]: r["n"] for r in turns}
    finally:
        if sipp is not None and sipp.returncode is None:
            try:
                os.killpg(sipp.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await sipp.wait()
        if tel is not None:
            await tel.stop()
        await pool.close()
        logging.getLogger().removeHandler(counter)
        res.warnings = counter.count
        res.run_seconds = time.monotonic() - t_start
    return res


async def poll(done: Any, limit: float) -> bool:
    """Wait until ``done()`` is true (checked every 50 ms) or ``limit`` seconds pass."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not done():
        if loop.time() >= end:
            return False
        await asyncio.sleep(0.05)
    return True


async def ramp_done(up: Any, n: int, ramp: float, ended: Any) -> None:
    """Wait until ``up()`` reaches ``n``, or the nominal ramp is over and ``up()`` has not grown for
    RAMP_QUIET seconds, or ``ended()``; at most ``ramp + RAMP_QUIET + 30`` seconds (the calls hold for
    ``ramp + SETTLE + seconds + TAIL + RAMP_QUIET``: a window that opens at the quiet end still runs in full)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    last, grew = up(), start
    while up() < n and not ended() and loop.time() - start < ramp + RAMP_QUIET + 30:
        await asyncio.sleep(0.05)
        now, count = loop.time(), up()
        if count != last:
            last, grew = count, now
        elif now - start >= ramp and now - grew >= RAMP_QUIET:
            return


def read_sipp_stats(path: Path) -> dict[str, str]:
    try:
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh, delimiter=";"))
    except OSError:
        return {}
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))


# --------------------------------------------------------------------------- report


def helper_cpu(s0: Snap, s1: Snap) -> dict[str, float]:
    """CPU seconds of the live helper processes in a window, by process name."""
    out: dict[str, float] = {}
    for pid, (name, cpu, _, _) in s1.helpers.items():
        before = s0.helpers.get(pid)
        out[name] = out.get(name, 0.0) + cpu - (before[1] if before is not None and before[0] == name else 0.0)
    return out


def worker_cpu(s0: Snap, s1: Snap) -> float:
    """The worker's CPU seconds in a window: its own threads, reaped children (espeak-ng), live helpers."""
    return (s1.cpu - s0.cpu) + (s1.children - s0.children) + sum(helper_cpu(s0, s1).values())


def frames(res: Result) -> tuple[float, int, int]:
    """(sent, on time, delivered) 20 ms frames in the steady window."""
    if res.steady is None:
        return 0.0, 0, 0
    window = res.steady[1].wall - res.steady[0].wall
    return sent_frames(res, window), sum(t[2] for t in res.ticks if t[0] <= PERIOD), sum(t[2] for t in res.ticks)


def sent_frames(res: Result, window: float) -> float:
    """Frames the callers sent in the window: its 20 ms slots × the calls up on the average tick (a call that
    came up inside the window counts from then on; a tick that never ran still counts its slot)."""
    if not res.ticks:
        return (res.steady_calls or 0) * window / PERIOD
    return window / PERIOD * sum(t[4] for t in res.ticks) / len(res.ticks)


def pct(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q):.0f}" if values else "–"


def report(res: Result) -> None:
    a = res.args
    n = res.calls
    print(f"\n== bench-sip worker {res.worker}: {n} sipp calls (G.711 μ-law, 50 pps each way, caller audio "
          f"{a.audio}, STT {a.stt}) → worker {res.worker + 1} of {a.workers}, event loop {res.loop_name}, "
          f"{os.cpu_count()} cores ==")

    st = res.sipp_stats
    created = st.get("TotalCallCreated", "?")
    ok = st.get("SuccessfulCall(C)", "?")
    failed = st.get("FailedCall(C)", "?")
    answered_db = int(res.db_metrics.get("answered", 0))
    print(f"calls    attempted {created}  answered {answered_db} (calls table)  "
          f"completed by sipp {ok}  failed by sipp {failed}  sipp rc {res.sipp_rc}")
    print("         calls table: " + ", ".join(f"{r['n']} {r['status']}/{r['hangup_cause']}/{r['disconnection_reason']}"
                                           for r in res.db_rows))
    print(f"         callers: {res.callers}; caller audio: {a.audio}; transcript turns written: "
          + (", ".join(f"{v} {k}" for k, v in res.turns.items()) or "none"))
    if res.sipp_rc not in (0, None) and res.sipp_err.strip():
        print("         sipp stderr (tail): " + res.sipp_err.strip().splitlines()[-1][:200])

    if res.idle is None or res.steady is None or res.ramp is None:
        print("run incomplete: no steady window")
        return
    i0, i1 = res.idle
    s0, s1 = res.steady
    r0, r1 = res.ramp
    idle_w, steady_w, ramp_w = i1.wall - i0.wall, s1.wall - s0.wall, r1.wall - r0.wall
    idle_pct = (i1.cpu - i0.cpu) / idle_w * 100
    steady_pct = worker_cpu(s0, s1) / steady_w * 100
    calls = res.steady_calls or 1
    per_call = steady_pct / calls
    net_per_call = (steady_pct - idle_pct) / calls
    print(f"steady   {steady_w:.1f} s with {res.steady_calls} calls up"
          f"{'' if res.all_up else f'  (NOT all {n} calls came up)'}")
    helpers = helper_cpu(s0, s1)
    print(f"CPU      worker + its helpers {steady_pct:.1f} % of one core = {per_call:.2f} % per call "
          f"(net of idle {net_per_call:.2f} % per call)   target ≤ 1.5 % per call: "
          f"{'MET' if per_call <= 1.5 else 'MISSED'}")
    groups = sorted(set(s1.by_thread) | set(s0.by_thread))
    split = {g: s1.by_thread.get(g, 0.0) - s0.by_thread.get(g, 0.0) for g in groups}
    print("         by thread: " + ", ".join(f"{g} {v / steady_w * 100:.1f} %" for g, v in
                                           sorted(split.items(), key=lambda kv: -kv[1]) if v > 0.001)
          + "  (threads that ended in the window are missing)")
    print(f"         worker process {(s1.cpu - s0.cpu) / steady_w * 100:.1f} %, reaped children (espeak-ng) "
          f"{(s1.children - s0.children) / steady_w * 100:.1f} %, live helpers: "
          + (", ".join(f"{k} {v / steady_w * 100:.1f} %" for k, v in helpers.items()) or "none"))
    seen: dict[tuple[str, int, str], int] = {}
    for name, _, nice, ioc in s1.helpers.values():
        seen[(name, nice, ioc)] = seen.get((name, nice, ioc), 0) + 1
    print("         helper priority: " + (", ".join(f"{c}× {name} nice {nice} I/O {ioc}" for (name, nice, ioc), c
                                                in sorted(seen.items())) or "no live helpers")
          + f"  (worker nice {os.getpriority(os.PRIO_PROCESS, 0)})")
    print("         real-time (SCHED_RR) threads at window end: " + (", ".join(
        f"{g} {n}" for g, n in sorted(s1.realtime.items())) or "none (SWITCHBOARD_REALTIME=off or not permitted)"))
    print(f"         reference, idle worker 0 calls over {idle_w:.1f} s: {idle_pct:.2f} % of one core")
    print(f"         ramp ({ramp_w:.1f} s, calls answered + greetings synthesised): worker "
          f"{worker_cpu(r0, r1) / ramp_w * 100:.1f} % (helpers included), of which espeak-ng children "
          f"{(r1.children - r0.children) / ramp_w * 100:.1f} % of one core")
    print(f"         same cores, other processes during steady: sipp {(s1.sipp - s0.sipp) / steady_w * 100:.1f} %, "
          f"PostgreSQL {(s1.pg - s0.pg) / steady_w * 100:.1f} % (shared by the workers)")
    other = (s1.machine - s0.machine) - worker_cpu(s0, s1) - sum(getattr(s1, k) - getattr(s0, k) for k in ("pg", "sipp"))
    print(f"         machine: {(s1.machine - s0.machine) / steady_w * 100:.0f} % busy of {os.cpu_count() * 100} %; "
          f"other processes (other workers, stand-ins, other users of the box) {max(0.0, other) / steady_w * 100:.0f} %"
          + ("  ← other work competed for the cores: rerun on a quiet machine" if other / steady_w > 0.25 else ""))
    rss = np.array(res.rss_steady) / 1024
    print(f"RSS      steady {rss.mean():.0f} MiB (idle {i1.rss_kib / 1024:.0f} MiB, "
          f"+{(rss.mean() - i1.rss_kib / 1024) / calls:.2f} MiB per call), peak {res.peak_rss_kib / 1024:.0f} MiB; "
          f"threads {s1.threads} (idle {i1.threads})")

    m0, m1 = s0.media, s1.media
    ticks = np.array([t[0] for t in res.ticks]) * 1000 if res.ticks else np.zeros(1)
    busy = np.array([t[1] for t in res.ticks]) * 1000 if res.ticks else np.zeros(1)
    cpu = np.array([t[5] for t in res.ticks]) * 1000 if res.ticks else np.zeros(1)
    nt = int(m1["ticks"] - m0["ticks"])
    print(f"tick     {nt} ticks in the window (expected {steady_w / PERIOD:.0f}); "
          f"late (> 20 ms after slot): {int(m1['late_ticks'] - m0['late_ticks'])} by MediaLoop.stats, "
          f"{int((ticks > 20).sum())} of the ticks recorded; lateness p50 {np.percentile(ticks, 50):.2f} / "
          f"p99 {np.percentile(ticks, 99):.2f} / max {ticks.max():.2f} ms "
          f"(MediaLoop.stats max_lateness_ms over the run {res.steady[1].media.get('max_lateness_ms', 0) or 0:.1f})")
    print(f"         tick busy p50 {np.percentile(busy, 50):.2f} / p99 {np.percentile(busy, 99):.2f} / "
          f"max {busy.max():.2f} ms (mean {(m1['busy_seconds'] - m0['busy_seconds']) / max(nt, 1) * 1000:.2f} ms = "
          f"{(m1['busy_seconds'] - m0['busy_seconds']) / steady_w * 100:.1f} % of a core, loop-thread wall time in both halves of a tick; the batched VAD runs on its own thread)")
    print(f"         tick CPU p50 {np.percentile(cpu, 50):.2f} / p99 {np.percentile(cpu, 99):.2f} ms (the event loop "
          f"thread's own CPU inside steps; wall − CPU = waiting for a core or the GIL)")
    late = [t for t in res.ticks if t[0] * 1000 > LATE_MS]
    if late:
        gap, gcpu, grunq, rest = _time_split(late, 6, 7, 8)
        print(f"         {len(late)} ticks > {LATE_MS:.0f} ms late; the loop thread between the tick before and each "
              f"of them (medians): {np.median(gap):.1f} ms wall = {np.median(gcpu):.1f} ms running other callbacks "
              f"+ {np.median(grunq):.1f} ms runnable, waiting for a core + {np.median(rest):.1f} ms asleep "
              f"(its poll, or the GIL held by another thread); summed: {gcpu.sum() / gap.sum() * 100:.0f} / "
              f"{grunq.sum() / gap.sum() * 100:.0f} / {rest.sum() / gap.sum() * 100:.0f} %")
    long = [t for t in res.ticks if t[1] * 1000 > LATE_MS]
    if long:
        wall, tcpu, trunq, rest = _time_split(long, 1, 5, 9)
        print(f"         {len(long)} ticks took > {LATE_MS:.0f} ms of the loop (the next one starts late), summed: "
              f"{tcpu.sum() / wall.sum() * 100:.0f} % its own CPU, {trunq.sum() / wall.sum() * 100:.0f} % runnable, "
              f"waiting for a core (I/O half), {rest.sum() / wall.sum() * 100:.0f} % the rest (the GIL held by "
              f"another thread; the turn-taking half's core wait)")
    jobs = m1["vad_jobs"] - m0["vad_jobs"]
    print(f"VAD      {jobs:.0f} batched jobs in the window, tick → results applied mean "
          f"{(m1['vad_seconds'] - m0['vad_seconds']) / max(jobs, 1) * 1000:.2f} ms (the ticks do not wait for them); "
          f"audio left unanalysed (VAD a second behind) {m1['vad_dropped_s'] - m0['vad_dropped_s']:.2f} s")
    windows, silent = m1["vad_windows"] - m0["vad_windows"], m1["vad_silent"] - m0["vad_silent"]
    print(f"         {windows:.0f} windows analysed, {windows - silent:.0f} by the model "
          f"({(windows - silent) / max(windows, 1) * 100:.1f} %); the rest under their line's noise floor or -60 dBFS")

    sent = sent_frames(res, steady_w)
    frames = sum(t[2] for t in res.ticks)
    on_time = sum(t[2] for t in res.ticks if t[0] <= PERIOD)
    reads = sum(t[4] for t in res.ticks)
    empty = sum(t[3] for t in res.ticks)
    frac = on_time / sent if sent else 0.0
    print(f"frames   on time {on_time}/{sent:.0f} = {frac * 100:.2f} %   target ≥ 99 %: "
          f"{'MET' if frac >= 0.99 else 'MISSED'}   (all delivered in window {frames}, "
          f"{frames / sent * 100 if sent else 0:.2f} %)")
    print(f"         stream-ticks with ≥ 1 new frame: {reads - empty}/{reads} = "
          f"{(reads - empty) / reads * 100 if reads else 0:.2f} %")
    h = res.health
    if h:
        print(f"         engine audio counters at window end ({h['calls']} calls): rx discarded (reader too slow) "
              f"{h['rx_discarded'] // 320} frames, rx dropped {h['rx_dropped'] // 320} frames, "
              f"tx starved {h['tx_starved_frames']} frames")
    lat = res.stt_latencies_ms
    print(f"STT      {res.stt_flushes} caller turns handed to speech-to-text in the window, {res.stt_finals} finals: "
          f"latency flush → final p50 {pct(lat, 50)} / p90 {pct(lat, 90)} / max {pct(lat, 100)} ms")
    ov = res.overload
    if ov:
        stt = ov.get("stt") or {}
        print(f"overload degraded at window end: {ov.get('degraded')}; calls admitted {ov.get('admitted')}, refused "
              f"{ov.get('refused')}; loop lateness (probe) p50/p95/max {ov['loop_lateness_ms']}; "
              f"STT shed {stt.get('shed')} of {stt.get('admitted', 0) + stt.get('shed', 0)} turns, "
              f"degraded (grammar only) {stt.get('degraded_utterances')}; time degraded {ov.get('degraded_seconds')} s")
    dm = res.db_metrics
    if dm.get("seconds"):
        print(f"RTP      whole calls (calls.metrics): {int(dm['rx_packets'])} packets received by the engine over "
              f"{dm['seconds']:.0f} answered call-seconds = {dm['rx_packets'] / (dm['seconds'] * 50) * 100:.2f} % of "
              f"50/s; lost {int(dm['lost'])}; max jitter {dm['max_jitter']:.1f} ms")
    print(f"run      {res.run_seconds:.0f} s; {res.warnings} warning/error log records (each distinct one shown once)")
    print("definitions: CPU % = Δ(user+sys of the worker process, all threads incl. native baresip, + every process it "
          "started but sipp) / Δwall, one core = 100 %. Frames on time = 20 ms frames read into media by ticks that started ≤ 20 ms after their "
          "slot, ÷ N × window / 20 ms (what the callers sent). A stream-tick = one call read on one tick.")


async def prepare(dsn: str, tmp: Path, stt: str, standin_url: str | None) -> tuple[Any, Any]:
    """Migrations and the demo bootstrap, once, before the workers start; the demo agent's recogniser."""
    from store.db import create_pool
    from store.migrate import migrate
    from switchboard.bootstrap import ensure_demo
    from switchboard.config import Settings

    Settings(data_dir=tmp, database_url=dsn).resolved_secret_key()  # created once, before the workers race
    pool = await create_pool(dsn, max_size=2)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            first = await ensure_demo(conn)
            if stt == "cloud":
                await conn.execute("UPDATE agents SET config = jsonb_set(config, '{stt}', $2::jsonb) WHERE id = $1",
                                   first.demo_agent_id, {"provider": "deepgram"})
    finally:
        await pool.close()
    return first.org_id, first.demo_agent_id


def worker_main(args: argparse.Namespace, index: int, tmp: Path, dsn: str, pg_pid: int | None, wav: Path,
                org_id: Any, agent_id: Any, conn: Any) -> None:
    """One worker process: runs the measurement and sends its Result back through ``conn``."""
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format=f"%(asctime)s w{index} %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_Once())
    pg_proc = None
    try:
        pg_proc = psutil.Process(pg_pid) if pg_pid else None
    except psutil.Error:
        pass
    loop_factory = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        pass
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            res = runner.run(run(args, tmp, dsn, pg_proc, wav, index, org_id, agent_id))
        conn.send(res)
    except BaseException as exc:
        import traceback

        conn.send(RuntimeError(f"worker {index} failed: {exc!r}\n{traceback.format_exc()}"))
    finally:
        conn.close()


def summary(args: argparse.Namespace, results: list[Result], standin_cpu: list[tuple[float, float]]) -> None:
    """One table: every worker and the total."""
    print(f"\n== bench-sip summary: {args.calls} calls, caller audio {args.audio}, STT {args.stt}, "
          f"{args.workers} worker(s), steady window {args.seconds:g} s, {os.cpu_count()} cores ==")
    print(f"{'worker':>6} {'calls':>6} {'answered':>8} {'up':>4} {'CPU %':>7} {'frames on time':>15} "
          f"{'tick late p99':>13} {'STT p50':>8} {'STT p90':>8} {'turns':>6} {'shed':>5} {'refused':>7}")
    all_sent = all_on = 0.0
    lat_all: list[float] = []
    cpu_all = 0.0
    answered_all = up_all = 0
    for r in results:
        if r.steady is None:
            print(f"{r.worker:>6} {r.calls:>6}  run incomplete")
            continue
        s0, s1 = r.steady
        w = s1.wall - s0.wall
        sent, on, _ = frames(r)
        lateness = [t[0] * 1000 for t in r.ticks] or [0.0]
        stt = (r.overload or {}).get("stt") or {}
        cpu = worker_cpu(s0, s1) / w * 100
        answered = int(r.db_metrics.get("answered", 0))
        print(f"{r.worker:>6} {r.calls:>6} {answered:>8} {r.steady_calls:>4} {cpu:>7.1f} "
              f"{(on / sent * 100 if sent else 0):>14.2f}% {np.percentile(lateness, 99):>10.1f} ms "
              f"{pct(r.stt_latencies_ms, 50):>5} ms {pct(r.stt_latencies_ms, 90):>5} ms {r.stt_finals:>6} "
              f"{stt.get('shed', '–')!s:>5} {(r.overload or {}).get('refused', '–')!s:>7}")
        all_sent += sent
        all_on += on
        lat_all += r.stt_latencies_ms
        cpu_all += cpu
        answered_all += answered
        up_all += r.steady_calls
    frac = all_on / all_sent if all_sent else 0.0
    print(f"{'all':>6} {args.calls:>6} {answered_all:>8} {up_all:>4} {cpu_all:>7.1f} {frac * 100:>14.2f}% "
          f"{'':>13} {pct(lat_all, 50):>5} ms {pct(lat_all, 90):>5} ms {len(lat_all):>6}")
    print(f"frames on time ≥ 99 %: {'MET' if frac >= 0.99 else 'MISSED'}; all {args.calls} calls answered and up "
          f"together: {'yes' if answered_all >= args.calls and up_all >= args.calls else 'NO'}")
    if standin_cpu and results and all(r.steady for r in results):
        w0 = max(r.steady_wall[0] for r in results)
        w1 = min(r.steady_wall[1] for r in results)
        inside = [(t, c) for t, c in standin_cpu if w0 <= t <= w1]
        if len(inside) >= 2:
            (t0, c0), (t1, c1) = inside[0], inside[-1]
            print(f"cloud STT stand-in (own process, not counted above): {(c1 - c0) / (t1 - t0) * 100:.1f} % of one "
                  f"core over the workers' common steady window")


def main() -> None:
    import multiprocessing as mp

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=100, help="concurrent calls N (over all workers)")
    ap.add_argument("--seconds", type=float, default=30.0, help="steady window T with all N calls up")
    ap.add_argument("--rate", type=float, default=10.0, help="new calls per second per worker (engine allows 20/s)")
    ap.add_argument("--idle-seconds", type=float, default=None, help="idle reference window (default min(T, 10))")
    ap.add_argument("--audio", choices=("speech", "tone", "quiet"), default="speech",
                    help="what callers send: espeak sentences, each followed by 4 s of listening (the agent "
                         "hears, transcribes and answers; default); a steady tone (the agent only listens); or "
                         "only the line noise of those listening pauses (the floor every talking call sits on)")
    ap.add_argument("--stt", choices=("local", "cloud"), default="local",
                    help="the demo agent's recogniser: local pocketsphinx (default) or a Deepgram-protocol "
                         "stand-in in its own process (final 150 ms after the voiced audio ends)")
    ap.add_argument("--workers", type=int, default=1, choices=(1, 2), help="worker processes on this box")
    ap.add_argument("--admission", choices=("on", "off", "stt"), default="on",
                    help="the workers' admission check (on: refuse before frames slip; stt: also while speech-to-text "
                         "is overloaded; off: never refuse, still measured — for a shared box)")
    ap.add_argument("-v", "--verbose", action="store_true", help="log INFO from the worker")
    args = ap.parse_args()
    if args.idle_seconds is None:
        args.idle_seconds = min(args.seconds, 10.0)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for tool in ("sipp", "sox", "espeak-ng", "timeout"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (scripts/install-system-deps.sh --test)")
    from store.db import embedded_database_url

    os.environ["SWITCHBOARD_ADMISSION"] = args.admission
    standins = None
    results: list[Result] = []
    standin_cpu: list[tuple[float, float]] = []  # (time.time(), CPU seconds) samples of the stand-in process
    with tempfile.TemporaryDirectory(prefix="sbsip", dir="/tmp") as tmpname:
        tmp = Path(tmpname)
        print(f"starting embedded PostgreSQL in {tmp} …", flush=True)
        dsn = embedded_database_url(tmp)
        import pgserver

        server = pgserver.get_server(tmp / "postgres")
        pg_pid = None
        try:
            pg_pid = int(server.get_pid())
        except (TypeError, ValueError, AttributeError):
            pass
        procs: list[Any] = []
        try:
            if args.stt == "cloud":
                from bench.standins import StandInProcess

                standins = StandInProcess(stt_final_ms=150.0)
                os.environ["DEEPGRAM_BASE_URL"] = standins.base_url
                os.environ["DEEPGRAM_API_KEY"] = "bench-key"
                print(f"Deepgram-protocol stand-in on {standins.base_url} (pid {standins.pid})", flush=True)
            org_id, agent_id = asyncio.run(prepare(dsn, tmp, args.stt, standins.base_url if standins else None))
            wav = {"speech": make_speech_ulaw, "tone": make_tone_ulaw, "quiet": make_quiet_ulaw}[args.audio](tmp)
            print(f"starting {args.workers} worker(s); {args.calls} calls ({args.audio}, STT {args.stt}) at "
                  f"{args.rate:g}/s per worker, steady window {args.seconds:g} s (idle reference "
                  f"{args.idle_seconds:g} s first) …", flush=True)
            ctx = mp.get_context("spawn")
            pipes = []
            for i in range(args.workers):
                parent, child = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=worker_main, args=(args, i, tmp, dsn, pg_pid, wav, org_id, agent_id, child),
                                   name=f"bench-worker-{i}")
                proc.start()
                child.close()
                procs.append(proc)
                pipes.append(parent)
            pending = list(range(args.workers))
            while pending:
                for i in list(pending):
                    if pipes[i].poll(0.5):
                        got = pipes[i].recv()
                        if isinstance(got, BaseException):
                            print(got, file=sys.stderr)
                        else:
                            results.append(got)
                        pending.remove(i)
                    elif not procs[i].is_alive():
                        print(f"worker {i} exited with {procs[i].exitcode} and no result", file=sys.stderr)
                        pending.remove(i)
                if standins is not None:
                    standin_cpu.append((time.time(), standins.cpu_seconds()))
        finally:
            for proc in procs:
                proc.join(30)
                if proc.is_alive():
                    proc.kill()
                    proc.join()
            if standins is not None:
                standins.stop()
            server.cleanup()
    results.sort(key=lambda r: r.worker)
    for res in results:
        report(res)
    summary(args, results, standin_cpu)


if __name__ == "__main__":
    main()
