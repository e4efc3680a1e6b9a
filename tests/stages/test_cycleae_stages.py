"""The census family and cycleae through the CLI: ingest → preprocess → train (+ the no-cycles ablation) → evaluate
→ register → report, what a user reads, the registered model on raw counts with a target context, the drift monitor,
and exit-2 errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from xmodal.cli import main

pytest.importorskip("tiledbsoma")

CYCLEAE = {"latent": 16, "classifier_width": 16, "batch_size": 32, "epochs": 3, "max_validation_cells": 300}
CENSUS = {"family": "census", "fields": ["cell_type", "sex", "tissue_general", "assay", "disease"],
          "source": {"kind": "synthetic_census", "n_cells": 1500, "n_genes": 80, "chunk_size": 400, "seed": 1}}


def _cli(root: Path, *args: str) -> int:
    return main([*args, "--params", str(root / "params.yaml"), "--root", str(root)])


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("census")
    params: dict = {"seed": 0}
    params["datasets"] = {"cs": CENSUS,
                          "cs_again": CENSUS,  # the same cells ingested again: new data without drift
                          "cs_other": {**CENSUS, "source": {**CENSUS["source"], "seed": 5}}}  # another experiment
    params["preprocess"] = {"census": {"n_top_genes": 60, "chunk_size": 150}}
    params["methods"] = {"cycleae": CYCLEAE}
    params["runs"] = {"cs-cycleae": {"dataset": "cs", "method": "cycleae"}}
    params["register"] = {"live_training": False, "gates": {"cycleae": {"cf_mean_change_r2": {"min": -100.0}}}}
    params["monitor"] = {"n_components": 10}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("ingest", "preprocess"):
        assert _cli(root, stage, "--dataset", "cs") == 0
    assert _cli(root, "train", "--dataset", "cs", "--method", "cycleae") == 0
    assert _cli(root, "evaluate", "--dataset", "cs", "--method", "cycleae") == 0
    return root


def test_evaluation_writes_what_a_user_reads(project: Path) -> None:
    root = project
    mdir = root / "models/cs/cycleae"
    assert json.loads((mdir / "ablation/model.json").read_text())["config"]["cycles"] is False
    rdir = root / "reports/cs/cycleae"
    metrics = json.loads((rdir / "metrics.json").read_text())
    assert set(metrics) == {"test", "validation", "train"}
    test = metrics["test"]
    for key in ("cf_mean_change_r2", "cf_cell_change_r2", "cf_cell_change_r2_top50", "cf_gene_mean_r2",
                "mean_shift_cell_change_r2", "mean_shift_mean_change_r2", "additive_shift_cell_change_r2",
                "additive_shift_mean_change_r2", "no_change_cell_change_r2",
                "additive_truth_cell_change_r2", "no_cycles_cf_cell_change_r2", "no_cycles_cf_mean_change_r2",
                "target_accuracy", "recon_mse", "recon_mse_mean", "influence_base", "influence_sex"):
        assert np.isfinite(test[key]), key
    assert 0 <= test["target_accuracy"] <= 1
    assert test["additive_truth_cell_change_r2"] > 0.8  # the planted interaction is small at these settings
    assert abs(test["no_change_cell_change_r2"]) < 0.05  # predicting no change scores about 0
    assert {"recon_mse", "classifier_accuracy"} <= set(metrics["validation"])
    for png in ("field_influence.png", "counterfactual_change.png", "training_curve.png"):
        assert (rdir / "plots" / png).stat().st_size > 1000, png
    table = pd.read_csv(rdir / "plots/field_influence.csv")
    assert list(table["head"]) == ["base", "cell_type", "sex", "tissue_general", "assay", "disease"]
    assert test["influence_sex"] == pytest.approx(table.set_index("head").loc["sex", "mean"])


def test_register_report_and_the_served_counterfactual(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import mlflow

    from xmodal.families.census._soma import store_obs, store_rows, store_var
    from xmodal.methods import load_model

    root = project
    test = json.loads((root / "reports/cs/cycleae/metrics.json").read_text())["test"]
    assert _cli(root, "register", "--all") == 0
    decision = json.loads((root / "reports/registry/cs/cycleae/decision.json").read_text())
    assert decision["decision"] == "promoted"
    assert decision["challenger"]["metrics"]["cf_mean_change_r2"] == pytest.approx(test["cf_mean_change_r2"])
    capsys.readouterr()
    assert _cli(root, "report") == 0
    assert "cf_mean_change_r2=" in capsys.readouterr().out

    # the registered model: raw counts of every ingested gene plus the metadata, and a target context
    store = root / "data/ingested/cs/store"
    obs = store_obs(store)
    counts, _ = store_rows(store, np.arange(20))
    frame = pd.DataFrame(counts.toarray(), columns=store_var(store)["feature_name"], index=obs.index[:20])
    for field in CENSUS["fields"]:
        frame[field] = obs[field].astype(str).to_numpy()[:20]
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    try:
        pyfunc = mlflow.pyfunc.load_model("models:/xmodal-cycleae-cs@champion")
        served = pyfunc.predict(frame, params={"set": '{"sex": "female"}'})
        pairs = pyfunc.predict(frame, params={"set": "sex=female"})
        with pytest.raises(Exception, match="not a value the model learned"):
            pyfunc.predict(frame, params={"set": "sex=other"})
    finally:
        mlflow.set_tracking_uri(None)
    import anndata as ad

    model = load_model(root / "models/cs/cycleae")
    local = model.counterfactual(ad.AnnData(X=counts, obs=obs.iloc[:20], var=store_var(store)), set={"sex": "female"})
    np.testing.assert_allclose(served, local.X, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(served, pairs)


def test_monitor_flags_another_experiment_and_not_the_same_cells(project: Path) -> None:
    from xmodal.config import load_params
    from xmodal.stages import monitor

    root = project
    for name in ("cs_again", "cs_other"):
        assert _cli(root, "ingest", "--dataset", name) == 0
    params = load_params(root / "params.yaml")
    other = monitor.run(params, dataset="cs", new="data/ingested/cs_other", root=root)
    assert other.retrain, {n: m.drifted_share for n, m in other.modalities.items()}
    same = monitor.run(params, dataset="cs", new="data/ingested/cs_again", root=root)
    assert not same.retrain, {n: m.drifted_share for n, m in same.modalities.items()}


def test_errors_exit_2_and_write_nothing(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = project
    capsys.readouterr()
    assert _cli(root, "train", "--dataset", "cs", "--method", "gwot") == 2
    assert "family 'paired'" in capsys.readouterr().err
    assert _cli(root, "ingest", "--dataset", "cs", "--set", "datasets.cs.fields=[cell_type, sex, colour]") == 2
    assert "unknown field 'colour'" in capsys.readouterr().err
    assert _cli(root, "preprocess", "--dataset", "cs", "--set",
                "datasets.cs.holdout=[{cell_type: T cell, sex: nobody}]") == 2
    assert "sex has no value 'nobody'" in capsys.readouterr().err
    assert _cli(root, "train", "--dataset", "cs", "--method", "cycleae", "--set", "methods.cycleae.batch_size=100000"
                ) == 2
    err = capsys.readouterr().err
    assert "methods.cycleae" in err
    assert "batch" in err
    assert json.loads((root / "models/cs/cycleae/model.json").read_text())["config"]["batch_size"] == 32
