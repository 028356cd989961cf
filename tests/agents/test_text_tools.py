"""Sentence splitting, templates and DTMF rules: pure logic, virtual clock."""

from __future__ import annotations

import pytest

from agents.dtmf import DtmfAction, DtmfMatcher
from agents.sentences import SentenceSplitter, clean_for_speech, split_sentences
from agents.templates import render, variables


def stream(text: str, step: int = 3) -> list[tuple[int, str]]:
    """Feed text in small deltas; return (chars fed when the sentence came out, sentence)."""
    s, out = SentenceSplitter(), []
    for i in range(0, len(text), step):
        out += [(i + step, x) for x in s.push(text[i : i + step])]
    return out + [(len(text), x) for x in s.flush()]


def test_sentences_come_out_as_soon_as_complete() -> None:
    text = "Sure! Your table is booked for 7.30 tonight. Anything else? I can also text you a reminder"
    got = stream(text)
    assert [x for _, x in got] == ["Sure!", "Your table is booked for 7.30 tonight.", "Anything else?",
                                   "I can also text you a reminder"]
    # the first sentence is released within a few characters of its end, not at the end of the reply
    assert got[0][0] <= len("Sure! Y") + 3
    assert got[1][0] <= text.index("Anything") + 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Dr. Smith will see you at 3 p.m. on Monday. Bye.", ["Dr. Smith will see you at 3 p.m. on Monday.", "Bye."]),
        ("It costs $4.99, e.g. less than lunch. OK?", ["It costs $4.99, e.g. less than lunch.", "OK?"]),
        ("Call J. R. Smith. He knows.", ["Call J. R. Smith.", "He knows."]),
        ("Wait... what? Really?", ["Wait...", "what?", "Really?"]),
        ('He said "Hello." Then left.', ['He said "Hello."', "Then left."]),
        ("Steps:\n1. Open the app.\n2. Tap book.", ["Steps:", "1. Open the app.", "2. Tap book."]),
        ("We have 2. Then 3.", ["We have 2.", "Then 3."]),
        ("**Great** news: your order #12 is `ready`.", ["Great news: your order #12 is ready."]),
        ("...", []),
        ("", []),
    ],
)
def test_sentence_rules(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected
    assert [x for _, x in stream(text, 1)] == expected  # the same, one character at a time


def test_an_exclamation_or_question_ends_the_sentence_without_waiting_for_the_next_token() -> None:
    s = SentenceSplitter()
    assert s.push("Sure!") == ["Sure!"]  # text-to-speech starts now, not when the model's next token comes
    assert s.push(" Can I help?") == ["Can I help?"]
    assert s.push("!") == [] and s.push(" Bye") == [] and s.flush() == ["Bye"]  # a lone '!' after it: silent
    assert s.push("It is 3.") == []  # a period still waits: "3.5", "Dr. Smith"
    assert s.push("5 now.") == [] and s.flush() == ["It is 3.5 now."]
    assert split_sentences("Really?! Yes.") == ["Really?!", "Yes."]


def test_endless_sentence_is_cut_at_a_clause() -> None:
    text = "I checked the calendar, " * 20
    out = split_sentences(text)
    assert all(len(x) <= 250 for x in out) and len(out) >= 2
    assert all(x.endswith(",") for x in out[:-1])
    assert " ".join(out) == clean_for_speech(text)


def test_templates() -> None:
    data = {"name": "Ann", "user": {"plan": "gold"}, "order": {"items": ["tea", "cake"]}, "vip": True, "n": 3}
    assert render("Hi {{user.name}}, your {{ user.plan }} plan, {{order.items.1}} x{{n}}.", data) == \
        "Hi Ann, your gold plan, cake x3."
    assert render("Hello {{user.missing}}!{{ nothing }}", data) == "Hello !"
    assert render("VIP: {{vip}}", data) == "VIP: yes"
    assert render("{{user.name}}", None) == ""
    # no code, no recursion, other braces untouched
    assert render("{{ __import__('os') }} {{a+b}} {x}", data) == "{{ __import__('os') }} {{a+b}} {x}"
    assert render("{{evil}}", {"evil": "{{name}}"}) == "{{name}}"
    assert render("{{user.name}}", {"user.name": "Flat"}) == "Flat"
    assert variables("{{a}} {{ b.c }} {{a}}") == ["a", "b.c"]


RULES = [
    {"digits": "0", "action": "transfer", "target": "sip:operator@example.com"},
    {"digits": "1", "action": "say", "text": "Our hours are nine to five."},
    {"digits": "12", "action": "hangup"},
    {"digits": "*9#", "action": "hangup"},
]


def test_dtmf_unambiguous_rule_fires_at_once() -> None:
    m = DtmfMatcher(RULES, inter_digit_timeout=2.0)
    assert m.push("0", 10.0) == DtmfAction("transfer", "0", "sip:operator@example.com", None)
    assert m.buffer == "" and m.deadline is None


def test_dtmf_prefix_waits_for_next_digit_or_pause() -> None:
    m = DtmfMatcher(RULES, inter_digit_timeout=2.0)
    assert m.push("1", 0.0) is None and m.deadline == 2.0
    assert m.poll(1.9) is None
    assert m.poll(2.0) == DtmfAction("say", "1", None, "Our hours are nine to five.")
    assert m.push("1", 5.0) is None
    assert m.push("2", 5.5).action == "hangup"


def test_dtmf_noise_and_multi_digit() -> None:
    m = DtmfMatcher(RULES, inter_digit_timeout=2.0)
    assert m.push("5", 0.0) is None and m.buffer == ""  # matches nothing: forgotten
    assert m.push("*", 1.0) is None and m.push("9", 1.5) is None
    assert m.push("#", 2.0) == DtmfAction("hangup", "*9#")
    assert m.push("*", 3.0) is None
    assert m.poll(5.5) is None and m.buffer == ""  # an incomplete sequence times out silently
    assert m.push("x", 6.0) is None


def test_dtmf_missed_deadline_then_new_digit() -> None:
    m = DtmfMatcher(RULES, inter_digit_timeout=2.0)
    assert m.push("1", 0.0) is None
    assert m.push("0", 9.0).action == "say"  # the pause ended "1"...
    assert m.deadline is not None and m.deadline <= 9.0
    assert m.poll(9.0).action == "transfer"  # ...and "0" is due at once


def test_dtmf_rules_validated_and_model_objects_accepted() -> None:
    with pytest.raises(ValueError):
        DtmfMatcher([{"digits": "1", "action": "dance"}])
    with pytest.raises(ValueError):
        DtmfMatcher([{"digits": "1x", "action": "hangup"}])

    class Rule:  # e.g. the API's pydantic model
        digits, action, target, text = "9", "hangup", None, None

    assert DtmfMatcher([Rule()]).push("9", 0).action == "hangup"
