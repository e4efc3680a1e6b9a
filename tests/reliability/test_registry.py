"""The registry under concurrency and across datasets: one version per model hash, one champion, decisions that
agree with the aliases, gates judged on the registered model's own cells, and the params a model was trained with.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from _cli import ENV, XMODAL, tiny_params, write_params, xmodal


def _params(root: Path) -> dict:
    return yaml.safe_load((root / "params.yaml").read_text())


def _client(root: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _versions(root: Path, name: str) -> list:
    return sorted(_client(root).search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))


@pytest.fixture(scope="module")
def _trained_twice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny`` and ``tiny2`` (another experiment), each trained and evaluated with gwot, nothing registered."""
    root = tmp_path_factory.mktemp("two-datasets")
    params = tiny_params()
    params["datasets"]["tiny2"] = copy.deepcopy(params["datasets"]["tiny"])
    params["datasets"]["tiny2"]["source"]["seed"] = 7
    params["runs"]["tiny2-gwot"] = {"dataset": "tiny2", "method": "gwot"}
    write_params(root, params)
    for dataset in ("tiny", "tiny2"):
        for stage in ("ingest", "preprocess"):
            assert xmodal(root, stage, "--dataset", dataset).rc == 0
        for stage in ("train", "evaluate"):
            assert xmodal(root, stage, "--dataset", dataset, "--method", "gwot").rc == 0
    return root


@pytest.fixture
def two_datasets(_trained_twice: Path, tmp_path: Path) -> Path:
    """A fresh copy of the trained project for each test (each changes its registry)."""
    import shutil

    return Path(shutil.copytree(_trained_twice, tmp_path / "project", symlinks=True))


def _at_once(root: Path, *args: str, n: int = 2) -> list[subprocess.CompletedProcess[str]]:
    cmd = [str(XMODAL), *args, "--params", str(root / "params.yaml"), "--root", str(root)]
    procs = [subprocess.Popen(cmd, cwd=root, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(n)]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        out.append(subprocess.CompletedProcess(cmd, p.returncode, stdout, stderr))
    return out


def test_two_register_all_at_once_on_a_fresh_store_agree(two_datasets: Path) -> None:
    root = two_datasets
    assert not (root / "mlflow.db").exists()
    done = _at_once(root, "register", "--all")
    for result in done:
        assert result.returncode == 0, result.stderr[-3000:]
        assert "Traceback" not in result.stderr
    for dataset in ("tiny", "tiny2"):
        name = f"xmodal-gwot-{dataset}"
        versions = _versions(root, name)
        hashes = [v.tags["xmodal.model_sha256"] for v in versions]
        assert len(hashes) == len(set(hashes)) == 1, hashes  # one version per model hash
        aliases = _client(root).get_registered_model(name).aliases
        assert aliases == {"champion": 1, "challenger": 1}
        decision = json.loads((root / f"reports/registry/{dataset}/gwot/decision.json").read_text())
        assert decision["aliases"] == {"champion": "1", "challenger": "1"}  # what the registry holds
        assert decision["champion_after"] == "1"
        assert decision["decision"] in ("promoted", "kept")
    outcomes = sorted(re.match(r"tiny/gwot: version \d+ of \S+ (\w+):", line)[1] for r in done
                      for line in r.stdout.splitlines() if line.startswith("tiny/"))
    assert outcomes == ["kept", "promoted"]  # one process promoted it, the other found it already champion


def test_a_challenger_the_champion_cannot_score_is_judged_on_the_registered_dataset(two_datasets: Path) -> None:
    """The retrained model (other features) cannot score the champion dataset's cells: rejected, not crowned."""
    root = two_datasets
    params = _params(root)
    params["datasets"]["wide"] = copy.deepcopy(params["datasets"]["tiny"])
    params["datasets"]["wide"]["source"].update({"dim_a": 15, "seed": 3})  # features the champion never saw
    params["register"] = {"gates": {"gwot": {"foscttm": {"max": 0.45}}}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    assert xmodal(root, "register", "--dataset", "tiny", "--method", "gwot").rc == 0
    for stage in ("ingest", "preprocess"):
        assert xmodal(root, stage, "--dataset", "wide").rc == 0
    for stage in ("train", "evaluate"):
        assert xmodal(root, stage, "--dataset", "wide", "--method", "gwot").rc == 0
    own = json.loads((root / "reports/wide/gwot/metrics.json").read_text())["test"]["foscttm"]
    assert own <= 0.45  # it passes the gate on its own cells ...
    got = xmodal(root, "register", "--dataset", "wide", "--method", "gwot", "--registered-as", "tiny")
    assert got.rc == 0, got.stderr[-2000:]
    decision = json.loads((root / "reports/registry/wide/gwot/decision.json").read_text())
    assert decision["decision"] == "rejected"  # ... but cannot be scored on the registered model's cells
    assert "cannot score the held-out cells of 'tiny'" in decision["reasons"][0]
    assert decision["aliases"]["champion"] == "1"
    assert _client(root).get_registered_model("xmodal-gwot-tiny").aliases["champion"] == 1


def test_gates_use_the_registered_datasets_cells_even_when_the_challenger_scores_its_own_well(
        two_datasets: Path) -> None:
    root = two_datasets
    params = _params(root)
    # tiny2 is another experiment with the same feature names: its model can score tiny's cells, badly
    params["register"] = {"gates": {"gwot": {"foscttm": {"max": 0.3}}}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    own = json.loads((root / "reports/tiny2/gwot/metrics.json").read_text())["test"]["foscttm"]
    got = xmodal(root, "register", "--dataset", "tiny2", "--method", "gwot", "--registered-as", "tiny")
    assert got.rc == 0, got.stderr[-2000:]
    decision = json.loads((root / "reports/registry/tiny2/gwot/decision.json").read_text())
    judged = decision["challenger"]["gate_metrics"]["foscttm"]
    assert decision["gates_judged_on"] == "tiny"
    assert judged != pytest.approx(own)  # the gate saw tiny's cells, not tiny2's
    assert decision["gates"][0]["value"] == pytest.approx(judged)
    assert decision["decision"] == ("rejected" if judged > 0.3 else "promoted")


def test_mlflow_logs_the_settings_the_model_was_trained_with(two_datasets: Path) -> None:
    root = two_datasets
    for stage in ("train", "evaluate"):
        assert xmodal(root, stage, "--dataset", "tiny", "--method", "gwot", "--set", "methods.gwot.epsilon=0.02",
                      "--set", "seed=3").rc == 0
    # params.yaml still says epsilon 0.01 and seed 0; the registered run must say what the model was made with
    assert xmodal(root, "register", "--dataset", "tiny", "--method", "gwot").rc == 0
    version = _versions(root, "xmodal-gwot-tiny")[-1]
    logged = _client(root).get_run(version.run_id).data.params
    assert logged["method.epsilon"] == "0.02"
    assert logged["seed"] == "3"
    assert logged["preprocess.n_pcs"] == "8"
    assert logged["dataset.source.n_cells"] == "150"


def test_a_champion_that_cannot_be_loaded_stops_the_registration(two_datasets: Path) -> None:
    import shutil

    root = two_datasets
    assert xmodal(root, "register", "--dataset", "tiny", "--method", "gwot").rc == 0
    shutil.rmtree(root / "mlartifacts")  # the champion's artifacts are gone
    for stage in ("train", "evaluate"):
        assert xmodal(root, stage, "--dataset", "tiny", "--method", "gwot", "--set", "methods.gwot.epsilon=0.02").rc == 0
    got = xmodal(root, "register", "--dataset", "tiny", "--method", "gwot", "--set", "methods.gwot.epsilon=0.02")
    from _cli import assert_refused

    assert_refused(got, needle=("the champion, version 1 of xmodal-gwot-tiny, cannot be loaded", "nothing was promoted"))
    assert _client(root).get_registered_model("xmodal-gwot-tiny").aliases["champion"] == 1


def test_a_register_killed_before_tagging_its_version_is_completed_by_the_next(two_datasets: Path) -> None:
    import signal
    import sys

    root = two_datasets
    killer = Path(__file__).with_name("_killer.py")
    cmd = [sys.executable, str(killer), "xmodal.tracking._mlflow:Tracker.set_tags:1:before", "--", "register",
           "--dataset", "tiny", "--method", "gwot", "--params", str(root / "params.yaml"), "--root", str(root)]
    done = subprocess.run(cmd, cwd=root, env=ENV, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    (version,) = _versions(root, "xmodal-gwot-tiny")
    assert "xmodal.model_sha256" not in version.tags  # killed between registering and tagging
    assert xmodal(root, "register", "--dataset", "tiny", "--method", "gwot").rc == 0
    (version,) = _versions(root, "xmodal-gwot-tiny")  # the same version, completed: no second one
    assert version.tags["xmodal.model_sha256"]
    assert _client(root).get_registered_model("xmodal-gwot-tiny").aliases == {"champion": 1, "challenger": 1}
