"""Sentence-aware chunking with overlap.

Text is cut into paragraphs (blank lines), paragraphs into sentences (the same splitter that feeds the
voice, so abbreviations, decimals and initials stay whole), and sentences are packed greedily into chunks
of at most ``max_words`` words. A chunk ends early at a paragraph break once it holds ``min_words``, so
short paragraphs stay whole and separate. When a chunk boundary falls inside a paragraph, the last
sentences of the chunk (up to ``overlap_words``) start the next one too, so a fact that spans the cut is
found whole in one of them. A sentence longer than ``max_words`` is cut into word windows that overlap.

Defaults: 120 words (~160 word pieces, under all-MiniLM-L6-v2's 256-token window), 30 words of overlap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agents.sentences import SentenceSplitter

_PARAGRAPH = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class ChunkConfig:
    max_words: int = 120
    min_words: int = 30
    overlap_words: int = 30

    def __post_init__(self) -> None:
        if not 0 <= self.overlap_words < self.max_words or self.min_words > self.max_words:
            raise ValueError("need 0 <= overlap_words < max_words and min_words <= max_words")


def split_sentences(paragraph: str) -> list[str]:
    splitter = SentenceSplitter(max_chars=1_000_000)
    return [*splitter.push(paragraph), *splitter.flush()]


def _words(text: str) -> int:
    return len(text.split())


def _windows(sentence: str, cfg: ChunkConfig) -> list[str]:
    """A sentence too long for one chunk, as overlapping word windows."""
    words = sentence.split()
    step = cfg.max_words - cfg.overlap_words
    out = []
    for start in range(0, len(words), step):
        out.append(" ".join(words[start:start + cfg.max_words]))
        if start + cfg.max_words >= len(words):
            break
    return out


def chunk_text(text: str, cfg: ChunkConfig | None = None) -> list[str]:
    cfg = cfg or ChunkConfig()
    chunks: list[str] = []
    current: list[str] = []  # sentences of the chunk being built
    size = 0  # its words
    fresh = False  # it holds a sentence no earlier chunk has

    def close(*, overlap: bool) -> None:
        nonlocal current, size, fresh
        if fresh:
            chunks.append(" ".join(current))
        carry: list[str] = []
        if overlap and cfg.overlap_words:
            n = 0
            for sentence in reversed(current[1:]):  # never carry the whole chunk
                n += _words(sentence)
                if n > cfg.overlap_words:
                    break
                carry.insert(0, sentence)
        current, size, fresh = carry, sum(_words(s) for s in carry), False

    for paragraph in _PARAGRAPH.split(text):
        sentences = split_sentences(paragraph)
        if not sentences:
            continue
        if size >= cfg.min_words:
            close(overlap=False)  # a paragraph break is the natural cut
        for sentence in sentences:
            n = _words(sentence)
            if n > cfg.max_words:
                close(overlap=False)
                pieces = _windows(sentence, cfg)
                chunks.extend(pieces[:-1])
                current, size, fresh = [pieces[-1]], _words(pieces[-1]), True
                continue
            if size + n > cfg.max_words:
                close(overlap=True)
                if size + n > cfg.max_words:  # the carried overlap and this sentence do not fit together
                    current, size = [], 0
            current.append(sentence)
            size += n
            fresh = True
    close(overlap=False)
    return chunks
