"""Drive the real ``xmodal`` command in a subprocess, and check what a hostile input must leave behind."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

XMODAL = Path(sys.executable).with_name("xmodal")
#: one thread per process: the machine is shared, and tests run several processes at once
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
       "PYTHONWARNINGS": "ignore", "MLFLOW_TRACKING_URI": ""}


@dataclass(frozen=True)
class Outcome:
    """What one ``xmodal`` call did."""

    rc: int
    stdout: str
    stderr: str

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.stderr + self.stdout

    def errors(self) -> list[str]:
        """The ``xmodal <cmd>: error:`` lines on stderr."""
        return [line for line in self.stderr.splitlines() if ": error: " in line]


def xmodal(root: Path, *args: str, params: str | Path | None = "params.yaml", timeout: float = 300,
           env: dict[str, str] | None = None) -> Outcome:
    """Run ``xmodal <args> --params <params> --root <root>`` in ``root``; return its exit code and output."""
    extra = [] if params is None else ["--params", str(params), "--root", str(root)]
    cmd = [str(XMODAL), *args, *extra]
    done = subprocess.run(cmd, cwd=root, env={**ENV, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout, check=False)
    return Outcome(done.returncode, done.stdout, done.stderr)


def assert_refused(outcome: Outcome, *, needle: str | tuple[str, ...] = (), code: int = 2) -> str:
    """Exit ``code``, no traceback, exactly one error message (containing every ``needle``); returns it."""
    assert not outcome.traceback, outcome.stderr[-3000:]
    assert outcome.rc == code, (outcome.rc, outcome.stderr[-3000:])
    errors = outcome.errors()
    assert len(errors) == 1, outcome.stderr[-3000:]
    message = errors[0] + "\n" + outcome.stderr.split(errors[0], 1)[1]
    for part in (needle,) if isinstance(needle, str) else needle:
        assert part in message, (part, message)
    return message


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every entry under ``folder`` (hidden ones included) → (size, mtime_ns): a snapshot to compare."""
    if not folder.exists():
        return {}
    out = {}
    for path in sorted(folder.rglob("*")):
        st = path.lstat()
        out[str(path.relative_to(folder))] = (st.st_size if path.is_file() else 0, st.st_mtime_ns)
    return out


def tiny_params() -> dict[str, Any]:
    """A copy of ``TINY_PARAMS`` of ``tests/conftest.py`` (for fixtures wider than one test)."""
    import copy
    import importlib.util

    spec = importlib.util.spec_from_file_location("_xmodal_tests_conftest", Path(__file__).parents[1] / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return copy.deepcopy(module.TINY_PARAMS)


def write_params(root: Path, params: dict[str, Any], name: str = "params.yaml") -> Path:
    path = root / name
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path
