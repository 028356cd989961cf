"""Does what the caller said so far read as a finished turn? A cue for the endpointer's wait, from the words.

`reads_finished(text)` is True when the transcript ends like a sentence can ("… for two people tomorrow
evening", "yes"), False when it stops on a word a sentence cannot end with — an article or possessive, a
conjunction, a preposition, "to", a copula, a subject pronoun, a filler ("could you tell me when", "my number
is", "I need to", "uh") — or on a comma or dash, and None when it cannot tell: nothing said, or a number
at the end (callers read digits in groups, with pauses between them). The endpointer then ends the turn
after a shorter silence, a longer one, or its usual one (media.endpointing: `Endpointer.hint`).

Closed-class words only: it never guesses from content words, so "I need to change" reads as finished
(a human listener might take the floor there too). Terminal punctuation a recogniser adds is not taken
as a sign of an end: recognisers punctuate at pauses as well.
"""

from __future__ import annotations

OPEN_ENDINGS = frozenset(
    # articles and possessive determiners
    "a an the my our their your its every each "
    # conjunctions and subordinators
    "and or but nor so because if when while where whether which who whose than though although unless "
    "until since as "
    # prepositions and the infinitive marker
    "to of in on at for from with by about into onto over under after before between through during "
    "without per via towards toward "
    # copulas and auxiliaries that need a complement
    "is are was were am be been being "
    # subject pronouns
    "i we they he she "
    # fillers
    "um uh er erm hmm uhm mm".split()
)
NUMBER_WORDS = frozenset(
    "zero oh one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred "
    "thousand million double triple".split()
)
_STRIP = ".?!\"'“”‘’)]}»"
_SEPARATORS = str.maketrans("", "", ",.-/+()$€£%#")  # 555-0100, $1,200, 3.5, 20%


def reads_finished(text: str) -> bool | None:
    t = text.strip()
    if not t:
        return None
    if t[-1] in ",;:-–—" or t.endswith(("...", "…")):
        return False
    last = t.split()[-1].strip(_STRIP).lower()
    if not last:
        return None
    if last.translate(_SEPARATORS).isdigit() or last in NUMBER_WORDS:
        return None
    return last not in OPEN_ENDINGS
