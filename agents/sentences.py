"""Split streamed LLM text into speakable sentences the moment each one is complete.

`SentenceSplitter.push(delta)` returns the sentences that delta completed, so text-to-speech can start on
the first sentence while the model is still writing the rest; `flush()` returns what is left at the end.
A '.' ends a sentence only when the next non-space character has arrived and it does not continue the
sentence: abbreviations ("Dr. Smith", "e.g. this"), initials ("J. R. Smith"), list markers ("1. Open"), decimals
and times ("3.5", "10.30") and a lower-case continuation are kept together. '!', '?', '…' and line breaks end sentences at
once (after the closing quote or bracket, if any). A sentence that runs past `max_chars` is cut at the last
clause break (, ; : —) or space, so one endless sentence cannot hold the voice back.
"""

from __future__ import annotations

import re

ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e eg ie a.m p.m am pm approx dept inc ltd co corp mt ft no nr "
    "tel ext est min max fig vol cf al jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri "
    "sat sun u.s u.k".split()
)
_CLOSERS = "\"')]}”’»"
_MARKDOWN = re.compile(r"(\*\*|__|\*|`+|^#{1,6}\s*|^\s*[-*•]\s+)", re.MULTILINE)


def clean_for_speech(text: str) -> str:
    """Drop markdown a model may write (emphasis, code ticks, headers, bullets) and squeeze spaces."""
    return " ".join(_MARKDOWN.sub("", text).split())


class SentenceSplitter:
    def __init__(self, *, max_chars: int = 250, min_cut: int = 60) -> None:
        self.max_chars = max_chars
        self.min_cut = min_cut  # never cut a long sentence before this many characters
        self._buf = ""
        self._scan = 0  # everything before this index was already looked at

    def push(self, delta: str) -> list[str]:
        self._buf += delta
        out: list[str] = []
        while True:
            cut = self._boundary()
            if cut is None:
                break
            self._emit(cut, out)
        while len(self._buf) > self.max_chars:
            self._emit(self._long_cut(), out)
        return out

    def flush(self) -> list[str]:
        out: list[str] = []
        self._emit(len(self._buf), out)
        return out

    def _emit(self, cut: int, out: list[str]) -> None:
        sentence = clean_for_speech(self._buf[:cut])
        self._buf = self._buf[cut:].lstrip()
        self._scan = 0
        if any(c.isalnum() for c in sentence):
            out.append(sentence)

    def _boundary(self) -> int | None:
        buf, n = self._buf, len(self._buf)
        i = self._scan
        while i < n:
            c = buf[i]
            if c == "\n":
                if buf[:i].strip():
                    return i + 1
                i += 1
                continue
            if c in ".!?…":
                j = i + 1
                while j < n and buf[j] in ".!?…":
                    j += 1
                while j < n and buf[j] in _CLOSERS:
                    j += 1
                if j >= n:
                    if c != ".":
                        return j  # '!', '?', '…' end it now: a '!' or closer the next delta brings is silent
                    self._scan = i
                    return None  # need to see what follows
                if not buf[j].isspace():
                    i = j
                    continue
                if c == "." and j == i + 1 or buf[i:j].rstrip(_CLOSERS) == ".":
                    k = j
                    while k < n and buf[k].isspace():
                        k += 1
                    if k >= n:
                        self._scan = i
                        return None
                    if not self._period_ends(buf[:i], buf[k]):
                        i = j
                        continue
                return j
            i += 1
        self._scan = n
        return None

    @staticmethod
    def _period_ends(before: str, next_char: str) -> bool:
        word = before.rsplit(None, 1)[-1] if before.strip() else ""
        word = word.lstrip("\"'([{“‘«").lower()
        if word in ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
            return False  # "Dr. Smith", "J. Smith"
        if next_char.islower():
            return False  # "... approx. ten" / unknown abbreviation
        return not (word.isdigit() and before.strip() == word)  # "1. Open the app" list marker

    def _long_cut(self) -> int:
        head = self._buf[: self.max_chars]
        for sep in (", ", "; ", ": ", " — ", " - "):
            k = head.rfind(sep)
            if k >= self.min_cut:
                return k + len(sep)
        k = head.rfind(" ")
        return k + 1 if k >= self.min_cut else self.max_chars


def split_sentences(text: str) -> list[str]:
    """The sentences of a whole text (begin messages, `say` rules)."""
    s = SentenceSplitter()
    return s.push(text) + s.flush()
