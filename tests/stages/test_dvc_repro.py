"""``dvc repro`` of the project's own dvc.yaml, end to end, in a temporary git repo on tiny data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from xmodal.families.paired import read_paired

REPO_ROOT = Path(__file__).resolve().parents[2]


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                   check=True, capture_output=True)


@pytest.fixture
def dvc_project(tiny_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git + DVC repo holding the real dvc.yaml, the sources its stages depend on, and tiny params."""
    root = tmp_path / "proj"
    root.mkdir()
    shutil.copy(REPO_ROOT / "dvc.yaml", root / "dvc.yaml")
    shutil.copytree(REPO_ROOT / "src" / "xmodal", root / "src" / "xmodal",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(tiny_project / "params.yaml", root / "params.yaml")
    # the stages call the `xmodal` console script of this interpreter's environment
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.chdir(root)
    _git(root, "init", "-q")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True, capture_output=True)
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "init")
    return root


def _repro(root: Path) -> list[str]:
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return sorted(stage.addressing for stage in repo.reproduce())


def test_repro_runs_every_stage_then_nothing(dvc_project: Path) -> None:
    ran = _repro(dvc_project)
    assert ran == ["evaluate@tiny-gwot", "ingest@tiny", "preprocess@tiny", "train@tiny-gwot"]
    metrics = json.loads((dvc_project / "reports/tiny/gwot/metrics.json").read_text())
    test_cells = read_paired(dvc_project / "data/processed/tiny").split("test")
    assert metrics["test"]["n_pairs"] == test_cells.a.n_obs > 0
    lock = yaml.safe_load((dvc_project / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(ran)
    # the stage's params are recorded precisely: only its own keys
    assert set(lock["stages"]["train@tiny-gwot"]["params"]["params.yaml"]) == {"seed", "threads", "methods.gwot",
                                                                             "datasets.tiny"}

    assert _repro(dvc_project) == []  # nothing changed → nothing runs


def test_changing_a_method_param_reruns_only_train_and_evaluate(dvc_project: Path) -> None:
    _repro(dvc_project)
    params = yaml.safe_load((dvc_project / "params.yaml").read_text())
    params["methods"]["gwot"]["epsilon"] = 0.02
    (dvc_project / "params.yaml").write_text(yaml.safe_dump(params))
    assert _repro(dvc_project) == ["evaluate@tiny-gwot", "train@tiny-gwot"]


def test_a_params_file_of_one_other_family_runs_too(dvc_project: Path) -> None:
    """The params list only what they have: here one multiome dataset and one run, no paired section at all
    (``dvc.yaml`` has no stage per family, so nothing asks for the missing one)."""
    from test_dualdann_stages import DUALDANN, MULTIOME

    params = {"seed": 0, "threads": 1, "datasets": {"mo": MULTIOME}, "split": {}, "preprocess": {"multiome": {}}, "evaluate": {},
              "methods": {"dualdann": {**DUALDANN, "epochs": 2}},
              "runs": {"mo-dualdann": {"dataset": "mo", "method": "dualdann"}}}
    (dvc_project / "params.yaml").write_text(yaml.safe_dump(params))
    assert _repro(dvc_project) == ["evaluate@mo-dualdann", "ingest@mo", "preprocess@mo", "train@mo-dualdann"]
    metrics = json.loads((dvc_project / "reports/mo/dualdann/metrics.json").read_text())
    assert set(metrics) == {"train", "validation", "test"}
    lock = yaml.safe_load((dvc_project / "dvc.lock").read_text())
    assert set(lock["stages"]["preprocess@mo"]["params"]["params.yaml"]) == {"threads", "split", "preprocess.multiome",
                                                                              "datasets.mo"}
    assert _repro(dvc_project) == []
