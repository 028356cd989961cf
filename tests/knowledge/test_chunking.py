"""Sentence-aware chunking with overlap."""

from __future__ import annotations

import pytest

from agents.knowledge.chunking import ChunkConfig, chunk_text, split_sentences


def _sentences(n: int, tag: str = "s") -> list[str]:
    return [f"Sentence {tag}{i} tells the caller fact number {i} about the service." for i in range(n)]


def test_sentences_keep_abbreviations_decimals_and_initials_whole() -> None:
    text = "Dr. Smith paid $3.50 at 10.30 a.m. on Monday. J. R. Smith agreed! Did he? Yes."
    assert split_sentences(text) == ["Dr. Smith paid $3.50 at 10.30 a.m. on Monday.", "J. R. Smith agreed!",
                                     "Did he?", "Yes."]


def test_chunks_are_whole_sentences_within_the_word_limit() -> None:
    sentences = _sentences(40)
    cfg = ChunkConfig(max_words=60, min_words=20, overlap_words=15)
    chunks = chunk_text(" ".join(sentences), cfg)
    assert len(chunks) > 3
    for chunk in chunks:
        assert len(chunk.split()) <= cfg.max_words
        pieces = split_sentences(chunk)
        assert all(p in sentences for p in pieces), "a sentence was cut"
    # every sentence is in some chunk, in order
    joined = " ".join(chunks)
    positions = [joined.index(s) for s in sentences]
    assert positions == sorted(positions)


def test_consecutive_chunks_inside_a_paragraph_overlap() -> None:
    cfg = ChunkConfig(max_words=60, min_words=20, overlap_words=15)
    chunks = chunk_text(" ".join(_sentences(30)), cfg)
    for first, second in zip(chunks, chunks[1:], strict=False):
        last_sentence = split_sentences(first)[-1]
        assert second.startswith(last_sentence), "the next chunk does not repeat the last sentence"
        assert len(last_sentence.split()) <= cfg.overlap_words


def test_paragraphs_are_cut_at_their_break_without_overlap() -> None:
    paragraphs = [" ".join(_sentences(4, tag=t)) for t in "abc"]  # ~44 words each
    chunks = chunk_text("\n\n".join(paragraphs), ChunkConfig(max_words=120, min_words=30, overlap_words=30))
    assert chunks == paragraphs


def test_short_paragraphs_join_the_next_one() -> None:
    text = "Opening hours\n\n" + " ".join(_sentences(4))
    chunks = chunk_text(text, ChunkConfig(max_words=120, min_words=30))
    assert chunks == ["Opening hours " + " ".join(_sentences(4))]


def test_a_sentence_longer_than_a_chunk_becomes_overlapping_windows() -> None:
    words = [f"w{i}" for i in range(250)]
    chunks = chunk_text(" ".join(words) + ".", ChunkConfig(max_words=100, min_words=10, overlap_words=20))
    assert [len(c.split()) for c in chunks] == [100, 100, 90]
    assert chunks[1].split()[0] == "w80" and chunks[2].split()[0] == "w160"
    assert chunks[-1].endswith("w249.")


def test_empty_and_blank_text_give_no_chunks() -> None:
    assert chunk_text("") == [] and chunk_text(" \n\n \t") == [] and chunk_text("...") == []


def test_default_chunks_fit_the_model_window() -> None:
    cfg = ChunkConfig()
    assert cfg.max_words <= 130 and 0 < cfg.overlap_words < cfg.max_words
    with pytest.raises(ValueError):
        ChunkConfig(max_words=50, overlap_words=50)
