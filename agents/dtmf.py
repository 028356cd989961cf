"""An agent's `dtmf_rules` acting on received digits.

`DtmfMatcher.push(digit, now)` collects digits; a rule fires as soon as the digits equal its `digits` and
no longer rule could still match, otherwise when the caller pauses longer than `inter_digit_timeout`
(`poll(now)`, called from the runtime's timer, or `deadline` to know when). Digits that can no longer
match any rule start over from the newest digit. Time is an argument: tests run on a virtual clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

VALID = frozenset("0123456789*#ABCD")


@dataclass(frozen=True, slots=True)
class DtmfAction:
    action: str  # transfer | hangup | say
    digits: str
    target: str | None = None
    text: str | None = None


def _rule(r: Any) -> DtmfAction:
    get = r.get if isinstance(r, Mapping) else (lambda k: getattr(r, k, None))
    digits = str(get("digits") or "").upper()
    action = get("action")
    if not digits or not set(digits) <= VALID or action not in ("transfer", "hangup", "say"):
        raise ValueError(f"bad DTMF rule {r!r}")
    return DtmfAction(action, digits, get("target"), get("text"))


class DtmfMatcher:
    def __init__(self, rules: Iterable[Any], *, inter_digit_timeout: float = 3.0) -> None:
        self.rules = {a.digits: a for a in map(_rule, rules)}
        self.timeout = inter_digit_timeout
        self.buffer = ""
        self._last: float | None = None

    @property
    def deadline(self) -> float | None:
        """When `poll()` would act on the digits collected so far (None: nothing pending)."""
        return None if not self.buffer or self._last is None else self._last + self.timeout

    def push(self, digit: str, now: float) -> DtmfAction | None:
        digit = digit.upper()
        if digit not in VALID:
            return None
        if self.buffer and self._last is not None and now - self._last >= self.timeout:
            fired = self.poll(now)  # the runtime missed the deadline: the pause decides first
            if fired is not None:
                self._start(digit, now)
                return fired
        self.buffer += digit
        self._last = now
        while self.buffer and not self._prefix(self.buffer):
            self.buffer = self.buffer[1:]  # drop leading digits until something could match
        return self._settle()

    def poll(self, now: float) -> DtmfAction | None:
        """Act on a pause: an exact match fires, anything else is forgotten."""
        if not self.buffer or self._last is None or now - self._last < self.timeout:
            return None
        action = self.rules.get(self.buffer)
        self.reset()
        return action

    def reset(self) -> None:
        self.buffer, self._last = "", None

    def _start(self, digit: str, now: float) -> None:
        self.buffer, self._last = digit, now
        if not self._prefix(self.buffer):
            self.reset()
        elif self.buffer in self.rules and not any(d != digit and d.startswith(digit) for d in self.rules):
            self._last = now - self.timeout  # complete on its own: due at once (`deadline` <= now)

    def _prefix(self, digits: str) -> bool:
        return any(d.startswith(digits) for d in self.rules)

    def _settle(self) -> DtmfAction | None:
        action = self.rules.get(self.buffer)
        if action is None:
            return None
        if any(d != self.buffer and d.startswith(self.buffer) for d in self.rules):
            return None  # "1" while "12" exists: wait for the next digit or the pause
        self.reset()
        return action
