"""The retrieval answerer: a caller's question → a few speakable sentences from the best matching
knowledge, or None (the agent then says its fallback line).

The best chunk above the threshold is cut into sentences; the sentence most similar to the question
starts the answer, and the sentences after it follow, up to 3 sentences and about 60 words, with
markdown and URLs removed. Each answer's retrieval time is kept (``last_ms``) and logged.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING
from uuid import UUID

import numpy as np

from .chunking import split_sentences
from .speech import MAX_SENTENCES, MAX_WORDS, speakable, strip_for_speech

if TYPE_CHECKING:
    from .service import KnowledgeService

log = logging.getLogger(__name__)


def _threshold_from_env() -> float:
    raw = os.environ.get("SWITCHBOARD_RETRIEVAL_THRESHOLD", "")
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_THRESHOLD
    return value if 0.0 <= value <= 1.0 else DEFAULT_THRESHOLD


# Cosine similarity (all-MiniLM-L6-v2) a chunk needs before the retrieval engine speaks it
# (SWITCHBOARD_RETRIEVAL_THRESHOLD overrides it). Lower than the query API's default 0.7: spoken questions
# are short and paraphrased; their right chunk typically scores 0.4–0.75 while off-topic questions stay
# under 0.3 (bench/knowledge.py measures both).
DEFAULT_THRESHOLD = 0.35
ANSWER_THRESHOLD = _threshold_from_env()


class RetrievalAnswerer:
    def __init__(self, service: KnowledgeService, org_id: UUID, kb_ids: Sequence[UUID], *,
                 threshold: float | None = None, top_k: int = 3, max_sentences: int = MAX_SENTENCES,
                 max_words: int = MAX_WORDS) -> None:
        self.service = service
        self.org_id = org_id
        self.kb_ids = list(kb_ids)
        self.threshold = ANSWER_THRESHOLD if threshold is None else threshold
        self.top_k = top_k
        self.max_sentences = max_sentences
        self.max_words = max_words
        self.last_ms: float | None = None  # retrieval time of the last answer
        self.last_similarity: float | None = None

    async def __call__(self, question: str) -> str | None:
        t0 = time.perf_counter()
        try:
            return await self._answer(question)
        except Exception:
            log.exception("knowledge lookup failed (organization %s)", self.org_id)
            return None
        finally:
            self.last_ms = (time.perf_counter() - t0) * 1000.0
            log.info("knowledge lookup %.1f ms (best similarity %s)", self.last_ms, self.last_similarity)

    async def _answer(self, question: str) -> str | None:
        self.last_similarity = None
        question = " ".join(question.split())
        if not question or not self.kb_ids:
            return None
        q = (await self.service.embed([question]))[0]
        hits = await self.service.search(self.org_id, self.kb_ids, question, top_k=self.top_k, threshold=0.0,
                                         embedding=q)
        if not hits:
            return None
        best = hits[0].match
        self.last_similarity = best.similarity
        if best.similarity < self.threshold:
            return None
        sentences = [s for s in split_sentences(best.text) if any(c.isalnum() for c in strip_for_speech(s))]
        if len(sentences) > 1:
            scores = (await self.service.embed(sentences)) @ q
            sentences = sentences[int(np.argmax(scores)):]
        return speakable(sentences, max_sentences=self.max_sentences, max_words=self.max_words) or None
