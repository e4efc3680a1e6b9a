"""Benchmarks cannot rot: every script in ``benchmarks/`` runs in its ``--quick`` mode and writes its JSON.

``make bench`` runs the full sizes; the figures of a quick run mean nothing, only that the script still works
against today's code and params.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p.name for p in (REPO / "benchmarks").glob("*.py") if not p.name.startswith("_"))


def test_every_benchmark_is_listed_in_make_bench() -> None:
    makefile = (REPO / "Makefile").read_text()
    bench = makefile.split("\nbench:", 1)[1].split("\n\n", 1)[0]
    assert SCRIPTS, "no benchmark scripts found"
    assert [s for s in SCRIPTS if f"benchmarks/{s}" not in bench] == []


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs_in_quick_mode(script: str, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    flag = "--output" if "--output" in (REPO / "benchmarks" / script).read_text() else "--out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), "--quick", flag, str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result.get("quick") is True, sorted(result)
