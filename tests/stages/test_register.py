"""``xmodal register`` against a real MLflow sqlite store: tracking, aliases, promotion, round trips."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from xmodal.cli import main
from xmodal.config import load_params

NAME = "xmodal-gwot-tiny"


def _cli(root: Path, *args: str) -> int:
    return main([*args, "--params", str(root / "params.yaml"), "--root", str(root)])


@pytest.fixture
def project(tiny_project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Tiny project, trained and evaluated, in a git repo, with gates loose enough for a poor model."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = yaml.safe_load((tiny_project / "params.yaml").read_text())
    params["register"] = {"gates": {"gwot": {"foscttm": {"max": 0.9}}}}
    (tiny_project / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("ingest", "preprocess"):
        assert _cli(tiny_project, stage, "--dataset", "tiny") == 0
    for stage in ("train", "evaluate"):
        assert _cli(tiny_project, stage, "--dataset", "tiny", "--method", "gwot") == 0
    git = ["git", "-C", str(tiny_project), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "params.yaml"], check=True)
    subprocess.run([*git, "commit", "-qm", "params"], check=True)
    return tiny_project


def _decision(root: Path) -> dict:
    return json.loads((root / "reports/registry/tiny/gwot/decision.json").read_text())


def _client(root: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_register_logs_the_run_and_promotes_the_first_model(project: Path) -> None:
    assert _cli(project, "register", "--dataset", "tiny", "--method", "gwot") == 0
    # MLflow's set_tracking_uri exports MLFLOW_TRACKING_URI; the stage must not leave it behind
    assert "MLFLOW_TRACKING_URI" not in os.environ
    decision = _decision(project)
    assert decision["decision"] == "promoted"
    assert decision["champion_after"] == "1"
    evaluated = json.loads((project / "reports/tiny/gwot/metrics.json").read_text())["test"]
    # the stage re-scores through the logged model + preprocessors: same cells, same numbers
    assert decision["challenger"]["metrics"]["foscttm"] == pytest.approx(evaluated["foscttm"], abs=1e-6)

    client = _client(project)
    model = client.get_registered_model(NAME)
    assert model.aliases == {"challenger": 1, "champion": 1}
    run = client.get_run(decision["run_id"])
    assert run.data.params["method.epsilon"] == "0.01"
    assert run.data.params["dataset.source.n_cells"] == "150"
    history = json.loads((project / "models/tiny/gwot/history.json").read_text())
    assert len(client.get_metric_history(run.info.run_id, "train/gw_loss")) == len(history)
    assert run.data.metrics["test/foscttm"] == pytest.approx(evaluated["foscttm"])
    head = subprocess.run(["git", "-C", str(project), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert run.data.tags["xmodal.git_commit"] == head
    schema = json.loads((project / "data/processed/tiny/schema.json").read_text())
    assert run.data.tags["xmodal.data.processed.a_sha256"] == schema["modalities"]["a"]["sha256"]
    assert run.data.tags["xmodal.version"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation/plots")}
    assert "evaluation/plots/embedding.png" in artifacts
    version = client.get_model_version(NAME, "1")
    assert version.tags["xmodal.model_sha256"] == decision["model_sha256"]


def test_registering_the_same_model_again_logs_nothing_new(project: Path) -> None:
    assert _cli(project, "register", "--all") == 0
    assert _cli(project, "register", "--all") == 0
    assert _decision(project)["decision"] == "kept"
    assert len(_client(project).search_model_versions(f"name = '{NAME}'")) == 1


def test_a_worse_model_is_not_promoted_over_the_champion(project: Path) -> None:
    assert _cli(project, "register", "--all") == 0
    good = _decision(project)["challenger"]["metrics"]["foscttm"]
    # a near-uniform coupling (huge entropy) collapses the shared space: a much worse model
    worse = ["--set", "methods.gwot.epsilon=5.0"]
    assert _cli(project, "train", "--dataset", "tiny", "--method", "gwot", *worse) == 0
    assert _cli(project, "evaluate", "--dataset", "tiny", "--method", "gwot", *worse) == 0
    assert _cli(project, "register", "--dataset", "tiny", "--method", "gwot", *worse) == 0
    decision = _decision(project)
    bad = decision["challenger"]["metrics"]["foscttm"]
    assert bad > good + 0.05, "precondition: the second model must really be worse"
    assert all(g["passed"] for g in decision["gates"]), "it fails on the champion comparison, not the gates"
    assert decision["decision"] == "rejected"
    assert decision["champion_before"]["metrics"]["foscttm"] == pytest.approx(good)
    assert _client(project).get_registered_model(NAME).aliases == {"challenger": 2, "champion": 1}
    assert _client(project).get_model_version(NAME, "2").tags["xmodal.validation_status"] == "failed"


def test_a_better_model_replaces_the_champion(project: Path) -> None:
    worse = ["--set", "methods.gwot.epsilon=5.0"]
    assert _cli(project, "train", "--dataset", "tiny", "--method", "gwot", *worse) == 0
    assert _cli(project, "evaluate", "--dataset", "tiny", "--method", "gwot", *worse) == 0
    assert _cli(project, "register", "--all", *worse) == 0
    assert _decision(project)["decision"] == "promoted"  # first model, passes the loose gate
    for stage in ("train", "evaluate"):
        assert _cli(project, stage, "--dataset", "tiny", "--method", "gwot") == 0
    assert _cli(project, "register", "--all") == 0
    decision = _decision(project)
    assert decision["decision"] == "promoted"
    assert decision["primary_metric"]["improvement"] > 0
    assert _client(project).get_registered_model(NAME).aliases == {"challenger": 2, "champion": 2}


def test_registered_as_joins_another_datasets_model(project: Path) -> None:
    assert _cli(project, "register", "--dataset", "tiny", "--method", "gwot", "--registered-as", "lab_a") == 0
    decision = _decision(project)
    assert decision["model_name"] == "xmodal-gwot-lab_a"
    assert decision["registered_as"] == "lab_a"
    client = _client(project)
    assert [m.name for m in client.search_registered_models()] == ["xmodal-gwot-lab_a"]
    run = client.get_run(decision["run_id"])
    assert run.data.tags["xmodal.dataset"] == "tiny"  # the run still names the data it was trained on


def test_registered_as_with_all_exits_2(tiny_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(tiny_project, "register", "--all", "--registered-as", "lab_a") == 2
    assert "--registered-as names one model" in capsys.readouterr().err


def test_registered_model_loads_as_our_class_and_through_pyfunc(project: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from xmodal.families.paired._data import read_paired
    from xmodal.methods import load_model
    from xmodal.methods.gwot import GWOT
    from xmodal.tracking import load_registered

    assert _cli(project, "register", "--all") == 0
    uri = f"sqlite:///{project / 'mlflow.db'}"
    loaded = load_registered(f"models:/{NAME}@champion", tracking_uri=uri)
    assert isinstance(loaded.model, GWOT)
    local = load_model(project / "models/tiny/gwot")
    data = read_paired(project / "data/processed/tiny").split("validation")
    x_b = np.asarray(data.b.X)
    np.testing.assert_allclose(loaded.model.transform(x_b, modality="b"), local.transform(x_b, modality="b"))

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    z = pyfunc.predict(x_b, params={"modality": "b"})
    np.testing.assert_allclose(z, local.transform(x_b, modality="b"))
    # raw measurements go through the logged preprocessor first
    raw = read_paired(project / "data/ingested/tiny").b
    raw = raw[data.b.obs_names]
    frame = raw.to_df()
    z_raw = pyfunc.predict(frame, params={"modality": "b", "input": "raw"})
    np.testing.assert_allclose(z_raw, z, atol=1e-5)


def test_register_before_evaluate_exits_2(tiny_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(tiny_project, "register", "--dataset", "tiny", "--method", "gwot") == 2
    assert "Fix:" in capsys.readouterr().err
    assert not (tiny_project / "mlflow.db").exists()


def test_relative_sqlite_uri_is_resolved_under_the_root(tiny_project: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from xmodal.tracking import resolve_tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = load_params(tiny_project / "params.yaml")
    assert resolve_tracking_uri(params.registry.tracking_uri, root=tiny_project) == \
        f"sqlite:///{tiny_project.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert resolve_tracking_uri("sqlite:///mlflow.db", root=tiny_project) == "http://mlflow:5000"


def test_stale_evaluation_is_refused_before_anything_is_logged(project: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    # retrain with other params but keep the old metrics.json: the report no longer describes the model
    assert _cli(project, "train", "--dataset", "tiny", "--method", "gwot", "--set", "methods.gwot.epsilon=5.0") == 0
    assert _cli(project, "register", "--all") == 2
    err = capsys.readouterr().err
    assert "stale" in err
    assert "Fix:" in err
    assert not (project / "reports/registry/tiny/gwot/decision.json").exists()
    assert not (project / "mlflow.db").exists()


def test_logged_model_requirements_pin_torch_without_the_local_label() -> None:
    """geoadvae needs torch where the model is served; ``+cpu`` exists only on PyTorch's own index."""
    from importlib import metadata

    from xmodal.tracking._mlflow import _requirements

    reqs = _requirements()
    torch_version = metadata.version("torch").split("+")[0]
    assert f"torch=={torch_version}" in reqs
    assert not [r for r in reqs if "+" in r]
