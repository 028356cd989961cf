"""The post-call report: what can be computed locally, plus (when an LLM is configured) the agent's
``post_call_analysis`` — summary, sentiment, whether the call succeeded, and custom fields with types.

``local_report`` needs nothing but the call row, its transcript and metrics: duration, turns,
interruptions, latency figures and an extractive summary (the highest-scoring sentences by word
frequency, in call order). ``analyze_with_llm`` asks an OpenAI-compatible model (streamed through the
``openai`` SDK) for one JSON object and coerces each field to its declared type; a field the model got
wrong is null, never a wrong type.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from .providers.base import LanguageModel, TextDelta

DEFAULT_ANALYSIS: dict[str, Any] = {"summary": True, "sentiment": True, "call_successful": True,
                                    "custom_fields": [], "model": None, "instructions": None}
SENTIMENTS = ("positive", "neutral", "negative")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[A-Za-zÀ-ÿ0-9']+")
_STOP = frozenset("""a an the and or but if then so to of in on at for with by from as is are was were be been am
i you he she it we they me my your our their this that these those do does did have has had not no yes ok okay
can could would should will shall may might just please thank thanks hello hi bye goodbye um uh oh well
there here what which who whom how when where why all any some""".split())


def analysis_config(agent_config: Mapping[str, Any] | None) -> dict[str, Any]:
    given = (agent_config or {}).get("post_call_analysis") or {}
    return {**DEFAULT_ANALYSIS, **given}


def _percentiles(metrics: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = metrics.get(key)
    return value if isinstance(value, dict) else {"p50": None, "p90": None}


def extractive_summary(turns: Sequence[Mapping[str, Any]], max_sentences: int = 3) -> str:
    sentences: list[tuple[int, str, str]] = []
    for turn in turns:
        if turn["role"] not in ("user", "agent"):
            continue
        for piece in _SENTENCE.split(turn["content"].strip()):
            if len(_WORD.findall(piece)) >= 2:
                sentences.append((len(sentences), "Caller" if turn["role"] == "user" else "Agent", piece.strip()))
    if not sentences:
        return ""
    freq = Counter(w for _, _, s in sentences for w in (x.lower() for x in _WORD.findall(s)) if w not in _STOP)
    top = max(freq.values(), default=1)

    def score(sentence: str) -> float:
        words = [w.lower() for w in _WORD.findall(sentence)]
        content = [freq[w] / top for w in words if w not in _STOP]
        return sum(content) / (len(words) ** 0.5) if words else 0.0

    chosen = sorted(sorted(sentences, key=lambda s: -score(s[2]))[:max_sentences])
    return " ".join(f"{who}: {text}" for _, who, text in chosen)


def local_report(call: Mapping[str, Any], turns: Sequence[Mapping[str, Any]], *,
                 analysis: Mapping[str, Any] | None = None) -> dict[str, Any]:
    metrics = call.get("metrics") or {}
    seconds = metrics.get("duration_seconds")
    if seconds is None and call.get("answered_at") is not None and call.get("ended_at") is not None:
        seconds = round((call["ended_at"] - call["answered_at"]).total_seconds(), 3)
    spoken = [t for t in turns if t["role"] in ("user", "agent")]
    interrupted = sum(1 for t in turns if t.get("interrupted"))
    analysis = {**DEFAULT_ANALYSIS, **(analysis or {})}
    return {
        "call_id": str(call["id"]),
        "generated_by": "local",
        "model": None,
        "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "summary": extractive_summary(turns) if analysis["summary"] else None,
        "sentiment": None,
        "call_successful": None,
        "custom_fields": {f["name"]: None for f in analysis.get("custom_fields") or []},
        "call": {"status": call["status"], "disconnection_reason": call.get("disconnection_reason"),
                 "hangup_cause": call.get("hangup_cause"), "duration_seconds": seconds},
        "conversation": {
            "turns": len(spoken),
            "user_turns": sum(1 for t in spoken if t["role"] == "user"),
            "agent_turns": sum(1 for t in spoken if t["role"] == "agent"),
            "tool_turns": sum(1 for t in turns if t["role"] == "tool"),
            "interruptions": max(interrupted, int(metrics.get("interruptions") or 0)),
            "user_words": sum(len(_WORD.findall(t["content"])) for t in spoken if t["role"] == "user"),
            "agent_words": sum(len(_WORD.findall(t["content"])) for t in spoken if t["role"] == "agent"),
        },
        "latency": {key: _percentiles(metrics, key) for key in (
            "voice_to_voice_ms", "stt_latency_ms", "llm_latency_ms", "tts_latency_ms")},
    }


def transcript_text(turns: Sequence[Mapping[str, Any]]) -> str:
    names = {"user": "Caller", "agent": "Agent", "tool": "Tool", "system": "System"}
    return "\n".join(f"{names.get(t['role'], t['role'])}: {t['content']}" for t in turns if t["content"].strip())


def prompt(analysis: Mapping[str, Any]) -> str:
    keys = []
    if analysis["summary"]:
        keys.append('"summary": string, two or three sentences on what happened in the call')
    if analysis["sentiment"]:
        keys.append('"sentiment": one of "positive", "neutral", "negative" (the caller\'s)')
    if analysis["call_successful"]:
        keys.append('"call_successful": true or false, whether the agent achieved the purpose of the call')
    for f in analysis.get("custom_fields") or []:
        kind = f.get("type", "string")
        if kind == "enum":
            kind = "one of " + ", ".join(json.dumps(c) for c in f.get("choices") or [])
        keys.append(f'"{f["name"]}": {kind} — {f.get("description", "")} (null if the call does not say)')
    text = ("You analyse a finished phone call between an AI voice agent and a caller. Answer with ONE JSON object "
            "and nothing else, with exactly these keys:\n- " + "\n- ".join(keys))
    if analysis.get("instructions"):
        text += "\n\nAbout this call: " + str(analysis["instructions"])
    return text


def _coerce(value: Any, spec: Mapping[str, Any]) -> Any:
    kind = spec.get("type", "string")
    if value is None:
        return None
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "yes", "false", "no"):
            return value.strip().lower() in ("true", "yes")
        return None
    if kind in ("number", "integer"):
        if isinstance(value, bool):
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        return int(number) if kind == "integer" else number
    if kind == "enum":
        return value if value in (spec.get("choices") or []) else None
    return value if isinstance(value, str) else json.dumps(value)


def parse_answer(text: str, analysis: Mapping[str, Any]) -> dict[str, Any]:
    """The model's JSON object (the first ``{…}`` in its answer), each field coerced to its type."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("the model's answer holds no JSON object")
    data = json.loads(text[start:end + 1])
    if not isinstance(data, dict):
        raise ValueError("the model's answer is not a JSON object")
    out: dict[str, Any] = {}
    if analysis["summary"]:
        out["summary"] = _coerce(data.get("summary"), {"type": "string"})
    if analysis["sentiment"]:
        sentiment = str(data.get("sentiment", "")).lower()
        out["sentiment"] = sentiment if sentiment in SENTIMENTS else None
    if analysis["call_successful"]:
        out["call_successful"] = _coerce(data.get("call_successful"), {"type": "boolean"})
    out["custom_fields"] = {f["name"]: _coerce(data.get(f["name"]), f) for f in analysis.get("custom_fields") or []}
    return out


async def analyze_with_llm(llm: LanguageModel, analysis: Mapping[str, Any],
                           turns: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    messages = [{"role": "system", "content": prompt(analysis)},
                {"role": "user", "content": "Transcript:\n" + (transcript_text(turns) or "(nobody spoke)")}]
    parts: list[str] = []
    async for event in llm.stream(messages):
        if isinstance(event, TextDelta):
            parts.append(event.text)
    return parse_answer("".join(parts), analysis)
