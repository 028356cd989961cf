"""Knowledge text made speakable."""

from __future__ import annotations

from agents.knowledge.speech import speakable, strip_for_speech


def test_markdown_and_urls_are_removed() -> None:
    text = "## Setup\n**Run** `make run` and see [the docs](https://example.com/docs) or https://x.io/a?b=1 now."
    assert strip_for_speech(text) == "Setup Run make run and see the docs or now."


def test_at_most_three_sentences() -> None:
    text = "One is here. Two is here. Three is here. Four is here."
    assert speakable(text) == "One is here. Two is here. Three is here."


def test_about_sixty_words_at_most() -> None:
    long_sentence = "Many " + " ".join(["words"] * 39) + "."
    out = speakable(f"{long_sentence} {long_sentence} {long_sentence}")
    assert out == long_sentence  # the second would pass 60 words
    assert len(out.split()) <= 60


def test_a_first_sentence_longer_than_the_limit_is_cut_and_closed() -> None:
    out = speakable(" ".join(f"w{i}," for i in range(100)))
    assert len(out.split()) == 60 and out.endswith("w59.")


def test_sentences_without_words_are_skipped() -> None:
    assert speakable(["---", "| a | b |", "Real text"]) == "a b. Real text."
    assert speakable(["***", "https://example.com"]) == ""
