"""``xmodal tune`` end to end on tiny Multiome data: a 5-trial Optuna search on validation cells only, stored
in sqlite, trials as nested MLflow runs, and ``train --best-params`` consuming the result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from xmodal.cli import main

DUALDANN = {"shared_dim": 32, "peak_hidden": 16, "peak_intermediate": 32, "cls_hidden": 16, "disc_hidden": 16,
            "source_pcs": 10, "batch_size": 32, "epochs": 4, "eval_every": 1}
MULTIOME = {"family": "multiome", "source": {"kind": "synthetic_multiome", "n_cells": 150, "n_background_genes": 40,
                                             "n_background_peaks": 150, "domains": ["a", "b"], "seed": 2}}
# widths and batch size held small on tiny data (tune.overrides win over the draws)
SMALL_TRIALS = {"dualdann": {"epochs": 3, "batch_size": 32, "peak_hidden": 16, "peak_intermediate": 32,
                             "cls_hidden": 16, "disc_hidden": 16}}


def _cli(root: Path, *args: str) -> int:
    return main([*args, "--params", str(root / "params.yaml"), "--root", str(root)])


@pytest.fixture
def project(tiny_project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = yaml.safe_load((tiny_project / "params.yaml").read_text())
    params["datasets"]["mo"] = MULTIOME
    params["methods"]["dualdann"] = DUALDANN
    params["tune"] = {"trials": 5, "startup_trials": 2, "warmup_steps": 1, "overrides": SMALL_TRIALS}
    params["runs"]["mo-dualdann"] = {"dataset": "mo", "method": "dualdann"}
    (tiny_project / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("ingest", "preprocess"):
        assert _cli(tiny_project, stage, "--dataset", "mo") == 0
    return tiny_project


def test_tune_searches_stores_and_trains_with_the_best(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = project
    assert _cli(root, "tune", "--dataset", "mo", "--method", "dualdann") == 0
    out = root / "reports/tune/mo/dualdann"
    best = json.loads((out / "best_params.json").read_text())
    assert best["n_trials"] == 5
    assert best["metric"] == "val_macro_f1"
    assert 0.0 <= best["best_value"] <= 1.0
    assert {"lr", "lambda_domain", "peak_layers"} <= set(best["params"])
    assert (out / "trials.csv").read_text().count("\n") == 6
    assert (out / "tune_history.png").stat().st_size > 1000

    import optuna

    study = optuna.load_study(study_name="xmodal-dualdann-mo", storage=f"sqlite:///{root / 'optuna.db'}")
    assert len(study.trials) == 5
    assert study.best_value == pytest.approx(best["best_value"])

    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("xmodal")
    runs = client.search_runs([experiment.experiment_id])
    parent = [r for r in runs if r.info.run_id == best["mlflow_parent_run"]]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == best["mlflow_parent_run"]]
    assert len(parent) == 1
    assert len(children) == 5
    assert parent[0].data.metrics["best_objective"] == pytest.approx(best["best_value"])

    # a second call continues the same study
    assert _cli(root, "tune", "--dataset", "mo", "--method", "dualdann", "--trials", "1") == 0
    assert json.loads((out / "best_params.json").read_text())["n_trials"] == 6

    # the best parameters train a model: they override params.yaml, --set overrides them
    assert _cli(root, "train", "--dataset", "mo", "--method", "dualdann", "--best-params", str(out / "best_params.json"),
                "--set", "methods.dualdann.epochs=2") == 0
    config = json.loads((root / "models/mo/dualdann/model.json").read_text())["config"]
    for key, value in best["params"].items():
        assert config[key] == pytest.approx(value), key
    assert config["epochs"] == 2
    assert best["params"]["batch_size"] == 32  # held fixed by tune.overrides

    capsys.readouterr()
    assert _cli(root, "train", "--dataset", "mo", "--method", "geoadvae", "--best-params",
                str(out / "best_params.json")) == 2
    assert "not 'geoadvae'" in capsys.readouterr().err
    assert _cli(root, "tune", "--dataset", "mo", "--method", "gwot") == 2
    assert "no search space" in capsys.readouterr().err


def test_test_cells_never_reach_the_search(project: Path) -> None:
    """Seed 001's Optuna objective was the split it reported (defect 4): here the test cells can be anything."""
    import mudata as md
    import numpy as np

    from xmodal.config import load_params
    from xmodal.stages import tune

    params = load_params(project / "params.yaml", overrides=["tune.storage=sqlite:///first.db"])
    first = tune.run(params, dataset="mo", method="dualdann", root=project, trials=3)
    path = project / "data/processed/mo/data.h5mu"
    data = md.read_h5mu(path)
    test = (data.mod["atac"].obs["split"].astype(str) == "test").to_numpy()
    x = data.mod["atac"].X.toarray()
    x[test] = np.random.default_rng(1).random((int(test.sum()), x.shape[1]))
    data.mod["atac"].X = x
    data.write(path)
    params = load_params(project / "params.yaml", overrides=["tune.storage=sqlite:///second.db"])
    second = tune.run(params, dataset="mo", method="dualdann", root=project, trials=3)
    assert second.best_value == first.best_value
    assert second.best_params == first.best_params
