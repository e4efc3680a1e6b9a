"""The GitHub workflows: triggers, and every command they call is a real, tested command line."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"

#: command → the test file that exercises it, and a string that file must contain
EXERCISED = {
    ("make", "install"): (".ci/run", "make test"),  # `make test` depends on `install`
    ("make", "test"): (".ci/run", "make test"),
    ("make", "lint"): ("tests/pipelines/test_workflows.py", "def test_make_lint_is_clean"),
    ("xmodal", "pipeline", "compile"): ("tests/pipelines/test_pipelines.py", '"pipeline", "compile"'),
    ("xmodal", "pipeline", "submit"): ("tests/pipelines/test_pipelines.py", '"pipeline", "submit"'),
    ("xmodal", "monitor"): ("tests/stages/test_monitor.py", '"monitor"'),
    ("xmodal", "register"): ("tests/stages/test_register.py", '"register", "--all"'),
    ("xmodal", "report"): ("tests/stages/test_lifecycle.py", '"report"'),
    ("dvc", "repro"): ("tests/stages/test_dvc_repro.py", "reproduce()"),
    ("dvc", "pull"): ("tests/s3/test_dvc_s3_remote.py", '"pull"'),
    ("dvc", "push"): ("tests/s3/test_dvc_s3_remote.py", '"push"'),
}
#: plain shell and git plumbing in the workflows is not ours to test
IGNORED = {"git"}


def _load(name: str) -> dict:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def _commands() -> list[tuple[str, list[str]]]:
    found = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job in _load(path.name)["jobs"].values():
            for step in job["steps"]:
                for line in str(step.get("run", "")).splitlines():
                    line = re.sub(r"\$\{\{[^}]*\}\}", "X", line).strip()
                    line = re.sub(r"^PATH=\S+\s+", "", line)
                    if not line or line.startswith("#"):
                        continue
                    for part in re.split(r"\s*(?:&&|\|\|)\s*", line):
                        words = shlex.split(part)
                        if words:
                            words[0] = Path(words[0]).name  # .venv/bin/xmodal → xmodal
                            found.append((path.name, words))
    return found


def test_ci_runs_lint_tests_and_compiles_on_every_push_and_pull_request() -> None:
    ci = _load("ci.yml")
    assert {"push", "pull_request"} <= set(ci["on"])
    runs = [s.get("run", "") for s in ci["jobs"]["test"]["steps"]]
    assert "make lint" in runs
    assert "make test" in runs
    assert any("pipeline compile" in r for r in runs)


def test_retraining_triggers_on_data_params_schedule_and_by_hand() -> None:
    on = _load("retrain.yml")["on"]
    assert "data/**.dvc" in on["push"]["paths"]
    assert "params.yaml" in on["push"]["paths"]
    assert on["schedule"][0]["cron"]
    assert "workflow_dispatch" in on


def test_every_workflow_command_is_exercised_by_a_test() -> None:
    commands = _commands()
    assert len(commands) >= 8
    for workflow, words in commands:
        if words[0] in IGNORED:
            continue
        key = next((k for k in EXERCISED if tuple(words[: len(k)]) == k), None)
        assert key is not None, f"{workflow}: `{' '.join(words)}` is not exercised by any test (add one to EXERCISED)"
        test_file, evidence = EXERCISED[key]
        assert evidence in (REPO / test_file).read_text(), f"{test_file} does not exercise {' '.join(key)}"


def test_every_xmodal_command_line_in_the_workflows_parses() -> None:
    from xmodal.cli import _parser

    lines = [words for _, words in _commands() if words[0] == "xmodal"]
    assert lines
    for words in lines:
        _parser().parse_args(words[1:])  # SystemExit(2) on an unknown or missing flag


def test_make_lint_is_clean() -> None:
    ruff = Path(sys.executable).parent / "ruff"
    if not ruff.exists():
        pytest.skip("ruff is not installed next to this interpreter (dev extra)")
    result = subprocess.run([str(ruff), "check", "src", "tests", "benchmarks"], cwd=REPO, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout
