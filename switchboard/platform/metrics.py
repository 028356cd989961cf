"""Prometheus metrics (``prometheus_client``), served at ``GET /metrics`` in the text format.

Counters and histograms are observed where things happen (the dispatcher sees every outbox event once
cluster-wide, so "calls ended" summed over workers is exact); gauges that describe state (active calls,
webhook queue depth, media tick) are refreshed from their source on each scrape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

REGISTRY = CollectorRegistry(auto_describe=True)

ACTIVE_CALLS = Gauge("switchboard_active_calls", "Calls not yet ended that this worker owns, by direction.",
                     ["direction"], registry=REGISTRY)
CALLS_ENDED = Counter("switchboard_calls_ended_total", "Calls ended, by final status and Q.850 cause.",
                      ["status", "cause"], registry=REGISTRY)
MEDIA_TICKS = Gauge("switchboard_media_ticks", "Media ticks run since start.", registry=REGISTRY)
MEDIA_LATE_TICKS = Gauge("switchboard_media_late_ticks", "Media ticks that ran more than one frame late.",
                         registry=REGISTRY)
MEDIA_MAX_LATENESS = Gauge("switchboard_media_tick_max_lateness_seconds", "Worst media tick lateness.",
                           registry=REGISTRY)
MEDIA_ON_TIME = Gauge("switchboard_media_ticks_on_time_ratio", "Share of media ticks that ran on time.",
                      registry=REGISTRY)
MEDIA_RX_FRAMES = Gauge("switchboard_media_rx_frames", "20 ms frames received on the media tick.",
                        registry=REGISTRY)
MEDIA_BUSY = Gauge("switchboard_media_tick_busy_seconds", "Time spent inside media ticks.", registry=REGISTRY)
MEDIA_VAD_JOBS = Gauge("switchboard_media_vad_jobs", "Batched VAD jobs applied (the tick does not wait for them).",
                       registry=REGISTRY)
MEDIA_VAD_SECONDS = Gauge("switchboard_media_vad_job_seconds", "Sum over VAD jobs of tick → results applied.",
                          registry=REGISTRY)
MEDIA_VAD_UNANALYSED = Gauge("switchboard_media_vad_unanalysed_seconds",
                             "Caller audio the VAD skipped: it was over its 1 s backlog behind.", registry=REGISTRY)
PHRASES_HITS = Gauge("switchboard_tts_phrase_cache_hits", "Fixed phrases (greetings, prompts) replayed from the "
                     "phrase cache since start.", registry=REGISTRY)
PHRASES_MISSES = Gauge("switchboard_tts_phrase_cache_misses", "Fixed phrases the synthesiser was asked for since "
                       "start (not in the phrase cache).", registry=REGISTRY)
PHRASES_BYTES = Gauge("switchboard_tts_phrase_cache_bytes", "Audio held by the phrase cache.", registry=REGISTRY)
WEBHOOK_QUEUE = Gauge("switchboard_webhook_queue_depth", "Webhook deliveries waiting (pending or retrying).",
                      registry=REGISTRY)
OUTBOX_BACKLOG = Gauge("switchboard_outbox_undispatched", "Outbox events the dispatcher has not handled yet.",
                       registry=REGISTRY)
WEBHOOK_ATTEMPTS = Counter("switchboard_webhook_attempts_total", "Webhook delivery attempts, by outcome.",
                           ["outcome"], registry=REGISTRY)
WEBHOOK_FAILURES = Counter("switchboard_webhook_delivery_failures_total",
                           "Failed webhook attempts (non-2xx, timeout, refused), by reason.", ["reason"],
                           registry=REGISTRY)
WEBHOOK_LATENCY = Histogram("switchboard_webhook_delivery_latency_seconds",
                            "Event committed → receiver answered 2xx.", registry=REGISTRY,
                            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600))
_LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10)
PROVIDER_LATENCY = Histogram("switchboard_provider_latency_seconds",
                             "Per-turn provider latency: stt (final transcript), llm (first token), tts (first "
                             "audio), voice_to_voice (caller stops → agent audio), retrieval.", ["stage"],
                             registry=REGISTRY, buckets=_LATENCY_BUCKETS)
REPORTS = Counter("switchboard_call_reports_total", "Post-call reports computed, by generator.", ["generator"],
                  registry=REGISTRY)

_STAGES = {"stt_latency_ms": "stt", "llm_latency_ms": "llm", "tts_latency_ms": "tts",
           "voice_to_voice_ms": "voice_to_voice", "retrieval_ms": "retrieval"}


def observe_call_metrics(metrics: Mapping[str, Any] | None) -> None:
    """Per-turn latencies of an ended call (its ``metrics.per_turn``) into the provider histograms."""
    for turn in (metrics or {}).get("per_turn") or []:
        for key, stage in _STAGES.items():
            value = turn.get(key)
            if isinstance(value, int | float):
                PROVIDER_LATENCY.labels(stage).observe(value / 1000)


def set_media_stats(stats: Any) -> None:
    """Copy the media loop's ``MediaStats`` (ticks, late_ticks, max_lateness_ms, rx_frames, busy_seconds, the VAD's
    jobs, their time and the audio it skipped)."""
    if stats is None:
        return
    ticks = int(getattr(stats, "ticks", 0))
    late = int(getattr(stats, "late_ticks", 0))
    MEDIA_TICKS.set(ticks)
    MEDIA_LATE_TICKS.set(late)
    MEDIA_MAX_LATENESS.set(float(getattr(stats, "max_lateness_ms", 0.0)) / 1000)
    MEDIA_ON_TIME.set((ticks - late) / ticks if ticks else 1.0)
    MEDIA_RX_FRAMES.set(int(getattr(stats, "rx_frames", 0)))
    MEDIA_BUSY.set(float(getattr(stats, "busy_seconds", 0.0)))
    MEDIA_VAD_JOBS.set(int(getattr(stats, "vad_jobs", 0)))
    MEDIA_VAD_SECONDS.set(float(getattr(stats, "vad_seconds", 0.0)))
    MEDIA_VAD_UNANALYSED.set(float(getattr(stats, "vad_unanalysed_seconds", 0.0)))


def set_phrase_cache(cache: Any) -> None:
    """Copy the worker's phrase cache counters (`agents.providers.phrase_cache.PhraseCache`)."""
    if cache is None:
        return
    PHRASES_HITS.set(int(cache.hits))
    PHRASES_MISSES.set(int(cache.misses))
    PHRASES_BYTES.set(int(cache.bytes))


def render(accept: str = "") -> tuple[bytes, str]:
    """The registry in the format the scraper's ``Accept`` header asks for, and its content type.

    Negotiated by prometheus_client itself: the text format 0.0.4 unless OpenMetrics is asked for (the
    library's own default changed between releases, so the header is never taken from a constant).
    """
    encoder, content_type = choose_encoder(accept)
    return encoder(REGISTRY), content_type
