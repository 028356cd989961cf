"""No warnings from packaging or from the embedded database's runtime directory."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

from tests.cli.serve_process import REPO, clean_env


def test_pyproject_applies_without_warnings() -> None:
    """setuptools ≥77 wants an SPDX string as `project.license` (a table warns at every build)."""
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = apply_configuration(Distribution(), REPO / "pyproject.toml")
    assert dist.metadata.license_expression == "Apache-2.0"
    assert [str(w.message) for w in caught] == []


def test_the_embedded_database_needs_no_xdg_runtime_dir(tmp_path: Path) -> None:
    """Without XDG_RUNTIME_DIR (root, containers, ssh) pgserver's platformdirs warned RuntimeDirWarning at
    import; Switchboard gives it a private runtime directory first."""
    code = ("from store.db import ensure_runtime_dir; import os, stat; p = ensure_runtime_dir(); "
            "import pgserver; print(p, oct(stat.S_IMODE(os.stat(p).st_mode)))")
    proc = subprocess.run([sys.executable, "-W", "error", "-c", code], env=clean_env(), cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "Warning" not in proc.stderr, proc.stderr
    path, mode = proc.stdout.split()
    assert mode == "0o700" and len(path) < 40  # short: a socket may live below it
