"""Whether a transcript reads as a finished turn: the endpointer's cue from the words (agents.turn_end)."""

from __future__ import annotations

import pytest

from agents.turn_end import reads_finished


@pytest.mark.parametrize("text", [
    "I would like to book a table for two people tomorrow evening", "yes", "Thank you.",
    "What does Switchboard do?", "Please send the invoice to my office address", "I need to change",
    "can you call me back", "I'm not sure what to do",
])
def test_words_a_sentence_can_end_with_read_as_finished(text: str) -> None:
    assert reads_finished(text) is True


@pytest.mark.parametrize("text", [
    "Could you tell me when", "My account number is", "I want to book a table for", "I need to",
    "and the", "it is for my", "So I was wondering if", "well, um", "I'd like the blue one, or", "Wait…",
    "Because.",  # a recogniser's period at a pause is no sign of an end
])
def test_words_that_leave_a_sentence_open_read_as_unfinished(text: str) -> None:
    assert reads_finished(text) is False


@pytest.mark.parametrize("text", ["", "   ", "my number is four five six", "it's 42", "call 555-0100", "$1,200."])
def test_nothing_said_or_a_number_at_the_end_cannot_tell(text: str) -> None:
    assert reads_finished(text) is None
