"""Peers and audio analysis for the end-to-end tests."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import wave
from pathlib import Path

import numpy as np

from tests.support.sip_peers import (
    HOST,
    Proc,
    baresip_peer_dir,
    free_port,
    make_tone_wav_ulaw,
    scenario,
    sipp_args,
    spawn,
)

RATE = 8000
FRAME = RATE // 50  # 20 ms


# --------------------------------------------------------------------------- WAV files


def read_stereo(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """(left, right, rate) of a 16-bit stereo WAV."""
    with wave.open(str(path), "rb") as w:
        assert w.getnchannels() == 2 and w.getsampwidth() == 2, (w.getnchannels(), w.getsampwidth())
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).reshape(-1, 2)
        return data[:, 0].copy(), data[:, 1].copy(), w.getframerate()


def read_mono(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        if w.getnchannels() > 1:
            data = data[:: w.getnchannels()]
        return data.copy(), w.getframerate()


def write_mono(path: Path, pcm: np.ndarray, rate: int = RATE) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(pcm, dtype=np.int16).tobytes())
    return path


def caller_tone_wav(path: Path, seconds: float, *, freq: float = 1000.0, lead_in: float = 0.3,
                    amp: int = 6000) -> Path:
    """What a softphone caller sends: a short silence, then a steady tone until the end (baresip hangs
    up when its source WAV ends)."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    pcm = np.sin(2 * np.pi * freq * t) * amp
    pcm[: int(lead_in * RATE)] = 0
    return write_mono(path, pcm.astype(np.int16))


def wav_complete(path: Path) -> bool:
    """The file's header sizes match its length (the writer closed it) and it holds audio."""
    try:
        with wave.open(str(path), "rb") as w:
            frames = w.getnframes()
            expected = frames * w.getnchannels() * w.getsampwidth()
        return frames > 0 and path.stat().st_size - expected in range(44, 200)
    except (EOFError, wave.Error, OSError):
        return False


async def wait_dump(dump_dir: Path, suffix: str = "dec", timeout: float = 8.0) -> Path:  # noqa: ASYNC109 - a polling deadline
    """baresip's sndfile dump of what it heard (``dump-*-dec.wav``), once it is closed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = complete_dump(dump_dir, suffix)
        if found is not None:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"baresip wrote no complete dump-*-{suffix}.wav in {dump_dir}")


def complete_dump(dump_dir: Path, suffix: str) -> Path | None:
    found = sorted(dump_dir.glob(f"dump-*-{suffix}.wav"))
    return found[-1] if found and wav_complete(found[-1]) else None


def file_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else -1


def recording_file(row: dict[str, object], data_dir: Path) -> Path:
    """A call's recording, which must be a file under the server's data dir."""
    path = Path(str(row["recording_path"]))
    assert path.is_file() and path.is_relative_to(data_dir / "recordings"), path
    return path


# --------------------------------------------------------------------------- analysis


def frame_rms(pcm: np.ndarray, rate: int = RATE, ms: int = 20) -> np.ndarray:
    n = rate * ms // 1000
    usable = len(pcm) // n * n
    if usable == 0:
        return np.zeros(0)
    frames = pcm[:usable].astype(np.float64).reshape(-1, n)
    return np.sqrt((frames**2).mean(axis=1))


def active_span(pcm: np.ndarray, rate: int = RATE, *, threshold: float = 300.0) -> tuple[float, float]:
    """(start, end) in seconds from the first to the last 20 ms frame louder than ``threshold`` RMS."""
    rms = frame_rms(pcm, rate)
    loud = np.flatnonzero(rms > threshold)
    if loud.size == 0:
        return 0.0, 0.0
    return loud[0] * 0.02, (loud[-1] + 1) * 0.02


def loudness(pcm: np.ndarray, rate: int = RATE, threshold: float = 300.0) -> str:
    """A 20 ms-per-character picture of where ``pcm`` is loud (for assertion messages)."""
    return "".join("#" if x > threshold else "." for x in frame_rms(pcm, rate))


def tone_ratio(pcm: np.ndarray, rate: int, freq: float, width: float = 30.0) -> float:
    """Share of the signal's energy within ``freq`` ± ``width`` Hz (1.0: a pure tone)."""
    x = pcm.astype(np.float64)
    x = x - x.mean()
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    total = spec.sum()
    return float(spec[np.abs(freqs - freq) <= width].sum() / total) if total else 0.0


def espeak_reference(text: str, workdir: Path, *, voice: str = "en-us", wpm: int = 175) -> np.ndarray:
    """The same text synthesised by espeak-ng as the local voice does it, at 8 kHz."""
    raw = workdir / "espeak-ref-22k.wav"
    out = workdir / "espeak-ref-8k.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(out)], check=True)
    return read_mono(out)[0]


def flite_reference(text: str, workdir: Path, *, voice: str = "kal16") -> np.ndarray:
    """The same text synthesised by flite as the default local voice (flite-kal16) does it, at 8 kHz."""
    raw = workdir / "flite-ref-16k.wav"
    out = workdir / "flite-ref-8k.wav"
    (workdir / "flite-ref.txt").write_text(text)
    subprocess.run(["flite", "-voice", voice, "--setf", "duration_stretch=1.0", "-f", str(workdir / "flite-ref.txt"),
                    "-o", str(raw)], check=True)
    subprocess.run(["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(out)], check=True)
    return read_mono(out)[0]


# --------------------------------------------------------------------------- peers


async def baresip_dial(workdir: Path, uri: str, source: Path, *, limit: float = 60, host: str = HOST,
                       netns: str | None = None) -> tuple[Proc, Path]:
    """A baresip softphone on ``host`` (inside network namespace ``netns`` if given) that dials ``uri`` at
    once, plays ``source`` (hangs up when it ends) and records what it hears under the returned dump
    directory."""
    port = free_port(42)
    conf = baresip_peer_dir(workdir, port=port, source_wav=source, host=host)
    prefix = ["ip", "netns", "exec", netns] if netns else []
    proc = await spawn([*prefix, "baresip", "-f", str(conf), "-e", f"/dial {uri}", "-t", str(int(limit))],
                       cwd=workdir, limit=limit + 5, name="baresip")
    return proc, workdir / "dump"


def tone_uac(workdir: Path, to_user: str, *, hold_ms: int, media: str | None = None, ua: str = "sipp-e2e",
             via_proxy: bool = False) -> Path:
    """sipp UAC scenario: INVITE for ``to_user``, plays a 1 kHz tone (or ``media``) for ``hold_ms``, BYE
    (``via_proxy``: ACK and BYE follow a record-routing proxy's route set)."""
    if media is None:
        wav = make_tone_wav_ulaw(workdir / "tone1k.wav", 1000, hold_ms / 1000 + 1)
        media = f'<exec rtp_stream="{wav.name},-1,0"/>'
    name = "uac_tone_proxy.xml" if via_proxy else "uac_tone.xml"
    return scenario(name, workdir, TO_USER=to_user, UA=ua, HOLD_MS=str(hold_ms), MEDIA=media)


def uac_to(sf: Path, target: str, service: str, *extra: str) -> list[str]:
    """sipp UAC args: one call to ``service``@``target``."""
    return [*sipp_args(sf, free_port(), free_port(4), "-s", service, "-m", "1", *extra), target]


def uas(workdir: Path, name: str, *extra: str, **subst: str) -> tuple[list[str], int]:
    """sipp UAS args on a fresh port (one call), and that port."""
    port = free_port()
    sf = scenario(name, workdir, **subst)
    return sipp_args(sf, port, free_port(4), "-m", "1", *extra), port


def sipp_pcap_dir(workdir: Path) -> None:
    """sipp's bundled pcaps (RFC 4733 DTMF, G.711) are found relative to the working directory."""
    link = workdir / "pcap"
    if not link.exists():
        link.symlink_to("/usr/share/sip-tester")


def have(*tools: str) -> bool:
    return all(shutil.which(t) for t in tools)


__all__ = ["HOST"]
