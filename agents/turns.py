"""Bookkeeping for agent turns (what was said, what was heard) and per-turn latency metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class AgentTurn:
    """One agent reply as queued for playout: sentences and how many samples each took."""

    start_sample: int  # the playout counter when the turn began
    end_sample: int  # the playout counter when its last queued sample will have played
    start_ms: int  # call time of the turn's start
    rate: int
    sentences: list[tuple[str, int]] = field(default_factory=list)
    generated: bool = False  # the reply is complete (nothing more will be queued)

    def add(self, sentence: str, samples: int) -> None:
        self.sentences.append((sentence, samples))
        self.end_sample += samples

    @property
    def samples(self) -> int:
        return self.end_sample - self.start_sample

    @property
    def text(self) -> str:
        return " ".join(s for s, _ in self.sentences)

    def heard(self, played: int) -> str:
        """The words the caller actually heard after ``played`` samples: whole sentences, then the
        share of the interrupted sentence's words that had played."""
        out: list[str] = []
        for sentence, samples in self.sentences:
            if played >= samples:
                out.append(sentence)
                played -= samples
                continue
            words = sentence.split()
            n = int(len(words) * max(0, played) / samples) if samples else 0
            if n:
                out.append(" ".join(words[:n]))
            break
        return " ".join(out)


@dataclass
class TurnMetrics:
    stt_latency_ms: float | None = None
    llm_latency_ms: float | None = None  # to the first token (or the retrieval answer)
    tts_latency_ms: float | None = None  # sentence → first audio
    voice_to_voice_ms: float | None = None  # caller stops speaking → agent audio starts
    retrieval_ms: float | None = None  # knowledge-base lookup for the turn
    tokens: int = 0
    first_audio_at: float | None = None


def _pct(values: list[float], q: float) -> float | None:
    """numpy's default (linear) percentile, without numpy's per-call overhead on a few values: it ran at
    every call's end, on the event loop (py-spy: ~1 % of a busy worker's loop)."""
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return round(s[lo] + (s[hi] - s[lo]) * (pos - lo), 1)


def summarize(turns: list[TurnMetrics], interruptions: int) -> dict[str, Any]:
    """The call's conversation metrics: per turn, and p50/p90 of each latency."""
    out: dict[str, Any] = {"turns": len(turns), "interruptions": interruptions,
                           "total_tokens": sum(t.tokens for t in turns)}
    per_turn = []
    for t in turns:
        per_turn.append({k: (round(v, 1) if isinstance(v, float) else v) for k, v in (
            ("stt_latency_ms", t.stt_latency_ms), ("llm_latency_ms", t.llm_latency_ms),
            ("tts_latency_ms", t.tts_latency_ms), ("voice_to_voice_ms", t.voice_to_voice_ms),
            ("retrieval_ms", t.retrieval_ms), ("tokens", t.tokens))})
    out["per_turn"] = per_turn
    for key in ("stt_latency_ms", "llm_latency_ms", "tts_latency_ms", "voice_to_voice_ms", "retrieval_ms"):
        values = [getattr(t, key) for t in turns if getattr(t, key) is not None]
        out[key] = {"p50": _pct(values, 50), "p90": _pct(values, 90)}
    return out
