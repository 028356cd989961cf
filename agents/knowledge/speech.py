"""Knowledge text made speakable: no markdown, no URLs, a few whole sentences."""

from __future__ import annotations

import re

from agents.sentences import clean_for_speech

from .chunking import split_sentences

MAX_SENTENCES = 3
MAX_WORDS = 60

_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")  # [text](url) → text; images vanish with their alt text
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_EMPTY_PARENS = re.compile(r"\(\s*\)")
_TABLE_RULE = re.compile(r"^\s*\|?[\s:|-]+\|[\s:|-]*$", re.MULTILINE)
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])")


def strip_for_speech(text: str) -> str:
    """Plain words: markdown links keep their text, URLs and table rules go, emphasis and bullets go."""
    text = _MD_LINK.sub(r"\1", text)
    text = _URL.sub("", text)
    text = _TABLE_RULE.sub("", text)
    text = text.replace("|", " ")
    text = _EMPTY_PARENS.sub("", text)
    text = clean_for_speech(text)
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text).strip()


def speakable(sentences: list[str] | str, *, max_sentences: int = MAX_SENTENCES, max_words: int = MAX_WORDS) -> str:
    """At most ``max_sentences`` whole sentences and about ``max_words`` words; a first sentence that is
    longer than that is cut at a word boundary and closed with a full stop."""
    if isinstance(sentences, str):
        sentences = split_sentences(sentences)
    out: list[str] = []
    words = 0
    for raw in sentences:
        sentence = strip_for_speech(raw)
        if not any(c.isalnum() for c in sentence):
            continue
        n = len(sentence.split())
        if out and (len(out) >= max_sentences or words + n > max_words):
            break
        if not out and n > max_words:
            sentence = " ".join(sentence.split()[:max_words]).rstrip(",;:—-") + "."
            n = max_words
        if sentence[-1] not in ".!?…":
            sentence += "."
        out.append(sentence)
        words += n
    return " ".join(out)
