"""The voice catalog: the local espeak-ng voices (always there, no account needed), then cloud voices."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass

log = logging.getLogger(__name__)

DEFAULT_VOICE_ID = "espeak-en-us"
_LINE = re.compile(r"^\s*(\d+)\s+(\S+)\s+(\S+)/([MFN-])\s+(.+?)\s{2,}(\S+)")


@dataclass(frozen=True)
class Voice:
    voice_id: str
    name: str
    provider: str
    language: str
    gender: str
    description: str
    engine_voice: str  # what the provider is asked for (espeak-ng: "-v" argument)

    def public(self) -> dict[str, str]:
        data = asdict(self)
        data.pop("engine_voice")
        return data


def _bcp47(lang: str) -> str:
    parts = lang.split("-")
    return "-".join([parts[0].lower(), *[p.upper() if len(p) == 2 else p for p in parts[1:]]])


def parse_espeak_voices(text: str) -> list[Voice]:
    """Parse ``espeak-ng --voices`` output into one male and one female voice per language."""
    voices: list[Voice] = []
    for line in text.splitlines()[1:]:
        match = _LINE.match(line)
        if not match:
            continue
        _, lang, _, _gender, raw_name, _file = match.groups()
        name = raw_name.strip().replace("_", " ")
        language = _bcp47(lang)
        base = f"espeak-{lang.lower()}"
        voices.append(Voice(base, f"{name.strip()} (espeak-ng)", "espeak", language, "male",
                            f"Local espeak-ng voice for {name.strip()}; works offline.", lang))
        voices.append(Voice(f"{base}-f", f"{name.strip()} female (espeak-ng)", "espeak", language, "female",
                            f"Local espeak-ng female variant for {name.strip()}; works offline.", f"{lang}+f3"))
    return voices


class VoiceCatalog:
    def __init__(self, voices: list[Voice]) -> None:
        self._voices = {v.voice_id: v for v in voices}

    @classmethod
    def load_local(cls) -> VoiceCatalog:
        """Blocking (runs espeak-ng once, ~20 ms): call at start-up, before or off the event loop."""
        exe = shutil.which("espeak-ng")
        if exe is None:
            log.warning("espeak-ng is not installed: no local voices (run scripts/install-system-deps.sh)")
            return cls([])
        out = subprocess.run([exe, "--voices"], capture_output=True, text=True, timeout=10, check=True).stdout
        return cls(parse_espeak_voices(out))

    def get(self, voice_id: str) -> Voice | None:
        return self._voices.get(voice_id)

    def search(self, provider: str | None = None, language: str | None = None,
               gender: str | None = None) -> list[Voice]:
        out = []
        for v in self._voices.values():
            if provider and v.provider != provider.lower():
                continue
            if gender and v.gender != gender.lower():
                continue
            if language and not _language_matches(v.language, language):
                continue
            out.append(v)
        return sorted(out, key=lambda v: (v.provider, v.language, v.voice_id))


def _language_matches(voice_lang: str, wanted: str) -> bool:
    if voice_lang == "multilingual":
        return True
    v, w = voice_lang.lower(), wanted.lower()
    return v == w or v.split("-")[0] == w or w.split("-")[0] == v
