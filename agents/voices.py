"""The voice catalog: the local voices (flite and espeak-ng: always there, no account needed), then cloud voices.

Local voices: four flite voices (`flite-kal16`, the default, `flite-slt`, `flite-rms`, `flite-awb`; English
only) and one male and one female espeak-ng voice per language espeak-ng speaks. The flite voices are
listed even when flite is not installed: they then speak with espeak-ng (agents.providers.local_tts) and
the start-up log says so.

Cloud voices (OpenAI speech, ElevenLabs premade voices) are in the catalog so that agents may name them;
the API lists them to an organization only when it holds that provider's key (`search(available=)`), and
a call whose organization has no key speaks with a local voice instead (agents.providers.registry)."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Collection
from dataclasses import asdict, dataclass

log = logging.getLogger(__name__)

DEFAULT_VOICE_ID = "flite-kal16"
FALLBACK_VOICE_ID = "espeak-en-us"  # the light fallback, and the voice of every language flite lacks
LOCAL_PROVIDERS = frozenset({"flite", "espeak"})
_LINE = re.compile(r"^\s*(\d+)\s+(\S+)\s+(\S+)/([MFN-])\s+(.+?)\s{2,}(\S+)")


@dataclass(frozen=True)
class Voice:
    voice_id: str
    name: str
    provider: str
    language: str
    gender: str
    description: str
    engine_voice: str  # what the provider is asked for (espeak-ng: "-v" argument; flite: "flite:<name>")

    @property
    def cloud(self) -> bool:
        """Needs a provider key (anything but the local flite and espeak-ng voices)."""
        return self.provider not in LOCAL_PROVIDERS

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


# flite's built-in voices (CMU Flite 2.2 and its voices: CMU's permissive licence, commercial use included).
# Measured by `make bench-tts` (round trip through G.711 and Whisper base; see the README's "Local voices").
_FLITE_VOICES = (
    ("kal16", "Kal", "en-US", "male",
     "Local flite voice (US English, male, diphone); the default: clear on a phone line, light on CPU; "
     "works offline."),
    ("slt", "SLT", "en-US", "female",
     "Local flite voice (US English, female, CMU ARCTIC clustergen); works offline."),
    ("rms", "RMS", "en-US", "male",
     "Local flite voice (US English, male, CMU ARCTIC clustergen); works offline."),
    ("awb", "AWB", "en-GB", "male",
     "Local flite voice (Scottish English, male, CMU ARCTIC clustergen); works offline."),
)


def flite_voices() -> list[Voice]:
    return [Voice(f"flite-{name}", f"{label} (flite)", "flite", lang, gender, desc, f"flite:{name}")
            for name, label, lang, gender, desc in _FLITE_VOICES]


# OpenAI speech voices (`voice` of /v1/audio/speech); all speak every language the model does.
_OPENAI_VOICES = (
    ("alloy", "neutral", "Balanced, even and clear."),
    ("ash", "male", "Warm and direct."),
    ("ballad", "male", "Soft and expressive (gpt-4o-mini-tts)."),
    ("coral", "female", "Bright and friendly."),
    ("echo", "male", "Calm and resonant."),
    ("fable", "male", "Expressive, British-sounding narrator."),
    ("nova", "female", "Energetic and upbeat."),
    ("onyx", "male", "Deep and authoritative."),
    ("sage", "female", "Gentle and measured."),
    ("shimmer", "female", "Light and warm."),
    ("verse", "male", "Versatile and lively (gpt-4o-mini-tts)."),
)

# ElevenLabs premade voices (the ids are public and stable); multilingual with the v2.5 models.
_ELEVENLABS_VOICES = (
    ("rachel", "Rachel", "21m00Tcm4TlvDq8ikWAM", "female", "Calm, young American woman; narration."),
    ("domi", "Domi", "AZnzlk1XvdvUeBnXmlld", "female", "Strong, confident American woman."),
    ("sarah", "Sarah", "EXAVITQu4vr4xnSDxMaL", "female", "Soft, young American woman; news."),
    ("elli", "Elli", "MF3mGyEYCl7XYWbV9V6O", "female", "Emotional, young American woman."),
    ("antoni", "Antoni", "ErXwobaYiN019PkySvjV", "male", "Well-rounded young American man."),
    ("josh", "Josh", "TxGEqnHWrfWFTfGW9XjX", "male", "Deep, young American man."),
    ("arnold", "Arnold", "VR6AewLTigWg4xSOukaG", "male", "Crisp, middle-aged American man."),
    ("adam", "Adam", "pNInz6obpgDQGcFmaJgB", "male", "Deep, middle-aged American man; narration."),
    ("george", "George", "JBFqnCBsd6RMkjVDRZzb", "male", "Warm, middle-aged British man."),
)


def cloud_voices() -> list[Voice]:
    """The cloud voices Switchboard knows, with `provider` naming the provider key they need."""
    voices = [Voice(f"openai-{name}", f"{name.capitalize()} (OpenAI)", "openai", "multilingual", gender,
                    f"OpenAI text-to-speech voice. {desc} Needs an OpenAI provider key.", name)
              for name, gender, desc in _OPENAI_VOICES]
    voices += [Voice(f"elevenlabs-{slug}", f"{name} (ElevenLabs)", "elevenlabs", "multilingual", gender,
                     f"ElevenLabs premade voice. {desc} Needs an ElevenLabs provider key.", voice_id)
               for slug, name, voice_id, gender, desc in _ELEVENLABS_VOICES]
    return voices


class VoiceCatalog:
    def __init__(self, voices: list[Voice]) -> None:
        self._voices = {v.voice_id: v for v in voices}

    @classmethod
    def load_local(cls) -> VoiceCatalog:
        """The local flite and espeak-ng voices, plus the cloud voices (listed per organization: see
        `search`). Blocking (runs espeak-ng once, ~20 ms): call at start-up, before or off the event loop."""
        if shutil.which("flite") is None:
            log.warning("flite is not installed: the flite voices (the default %s included) speak with "
                        "espeak-ng (run scripts/install-system-deps.sh)", DEFAULT_VOICE_ID)
        exe = shutil.which("espeak-ng")
        if exe is None:
            log.warning("espeak-ng is not installed: only the flite voices are local (run "
                        "scripts/install-system-deps.sh)")
            return cls(flite_voices() + cloud_voices())
        out = subprocess.run([exe, "--voices"], capture_output=True, text=True, timeout=10, check=True).stdout
        return cls(flite_voices() + parse_espeak_voices(out) + cloud_voices())

    def get(self, voice_id: str) -> Voice | None:
        return self._voices.get(voice_id)

    def search(self, provider: str | None = None, language: str | None = None,
               gender: str | None = None, *, available: Collection[str] | None = None) -> list[Voice]:
        """Filtered voices; `available`: the cloud providers usable (keys held) — None means all."""
        out = []
        for v in self._voices.values():
            if available is not None and v.cloud and v.provider not in available:
                continue
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
