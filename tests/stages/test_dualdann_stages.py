"""The multiome family and dualdann through the CLI: ingest → preprocess → train (+ ablation) → evaluate →
register → report, the outputs a user reads, the logged MLflow model on raw cells, and exit-2 errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from xmodal.cli import main

DUALDANN = {"shared_dim": 32, "peak_hidden": 16, "peak_intermediate": 32, "cls_hidden": 16, "disc_hidden": 16,
            "source_pcs": 10, "batch_size": 32, "epochs": 4, "eval_every": 2}
MULTIOME = {"family": "multiome", "source_domain": "line_a", "target_domain": "line_b",
            "source": {"kind": "synthetic_multiome", "n_cells": 150, "n_background_genes": 40,
                       "n_background_peaks": 150, "domains": ["line_a", "line_b"], "program_shift": 1.0, "seed": 2}}


def _cli(root: Path, *args: str) -> int:
    return main([*args, "--params", str(root / "params.yaml"), "--root", str(root)])


@pytest.fixture
def project(tiny_project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = yaml.safe_load((tiny_project / "params.yaml").read_text())
    params["datasets"]["mo"] = MULTIOME
    params["methods"]["dualdann"] = DUALDANN
    params["runs"] = {"mo-dualdann": {"dataset": "mo", "method": "dualdann"}}
    # no gate: this test follows the plumbing. (A bound of 0 is no gate either: register asks the model to beat
    # a constant prediction where the bound asks less, and this 4-epoch fit does not.)
    params["register"] = {"gates": {}}
    (tiny_project / "params.yaml").write_text(yaml.safe_dump(params))
    return tiny_project


def test_lifecycle_writes_what_a_user_reads(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = project
    assert _cli(root, "ingest", "--dataset", "mo") == 0
    schema = json.loads((root / "data/ingested/mo/schema.json").read_text())
    assert schema["family"] == "multiome"
    assert schema["domains"] == ["line_a", "line_b"]
    assert _cli(root, "preprocess", "--dataset", "mo") == 0
    assert (root / "data/processed/mo/preprocessor_atac/meta.json").is_file()
    assert _cli(root, "train", "--dataset", "mo", "--method", "dualdann") == 0
    mdir = root / "models/mo/dualdann"
    assert (mdir / "weights.pt").is_file()
    assert (mdir / "loss_curves.png").is_file()
    ablation = json.loads((mdir / "ablation/model.json").read_text())
    assert ablation["config"]["adapt"] is False
    assert ablation["info"]["n_target_train"] == 0
    assert _cli(root, "evaluate", "--dataset", "mo", "--method", "dualdann") == 0

    rdir = root / "reports/mo/dualdann"
    metrics = json.loads((rdir / "metrics.json").read_text())
    assert set(metrics) == {"test", "validation", "train"}
    test = metrics["test"]
    for key in ("target_atac_accuracy", "target_atac_balanced_accuracy", "target_atac_macro_f1",
                "target_atac_cohen_kappa", "target_atac_f1_G1", "source_rna_macro_f1", "source_atac_macro_f1",
                "target_rna_macro_f1", "ablation_target_atac_macro_f1"):
        assert 0.0 <= test[key] <= 1.0 or key.endswith("kappa"), key
    assert test["adaptation_gain_macro_f1"] == pytest.approx(
        test["target_atac_macro_f1"] - test["ablation_target_atac_macro_f1"])
    for png in ("confusion_matrix.png", "embedding.png", "training_curve.png"):
        assert (rdir / "plots" / png).stat().st_size > 1000
    predictions = pd.read_csv(rdir / "predictions.csv", index_col=0)
    assert len(predictions) == 300
    assert {"split", "domain", "phase", "predicted_phase_atac", "p_G1_atac", "p_S_atac", "p_G2M_atac",
            "predicted_phase_rna"} <= set(predictions.columns)
    np.testing.assert_allclose(predictions[["p_G1_atac", "p_S_atac", "p_G2M_atac"]].sum(axis=1), 1.0, atol=1e-4)
    # the test metrics are those of the written predictions
    cells = predictions[(predictions["split"] == "test") & (predictions["domain"] == "line_b")]
    assert (cells["phase"] == cells["predicted_phase_atac"]).mean() == pytest.approx(test["target_atac_accuracy"])
    import mudata as md

    annotated = md.read_h5mu(rdir / "predictions.h5mu")
    assert "p_S_atac" in annotated.mod["atac"].obs

    assert _cli(root, "register", "--all") == 0
    decision = json.loads((root / "reports/registry/mo/dualdann/decision.json").read_text())
    assert decision["model_name"] == "xmodal-dualdann-mo"
    assert decision["decision"] == "promoted"
    assert decision["challenger"]["metrics"]["target_atac_macro_f1"] == pytest.approx(test["target_atac_macro_f1"])
    capsys.readouterr()
    assert _cli(root, "report") == 0
    out = capsys.readouterr().out
    assert "target_atac_macro_f1=" in out
    assert "adaptation_gain_macro_f1=" in out
    summary = json.loads((root / "reports/summary.json").read_text())
    assert summary["runs"][0]["metrics"]["target_atac_macro_f1"] == test["target_atac_macro_f1"]

    # the registered model classifies raw ATAC counts through its logged preprocessor
    import mlflow

    from xmodal.families.multiome._io import read_multiome

    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    try:
        pyfunc = mlflow.pyfunc.load_model("models:/xmodal-dualdann-mo@champion")
        raw = read_multiome(root / "data/ingested/mo").atac
        probs = pyfunc.predict(raw.to_df(), params={"modality": "atac", "input": "raw"})
        named = pyfunc.predict(raw.to_df(), params={"modality": "atac", "input": "raw", "domain": "line_b"})
    finally:
        mlflow.set_tracking_uri(None)
    expected = predictions.loc[raw.obs_names, ["p_G1_atac", "p_S_atac", "p_G2M_atac"]].to_numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    np.testing.assert_array_equal(named, probs)  # no peak mapper for a line that measured every peak


def test_errors_exit_2_and_write_nothing(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = project
    assert _cli(root, "ingest", "--dataset", "mo", "--set", "datasets.mo.source.n_cells=abc") == 2
    assert "datasets.mo.source.n_cells: expected int" in capsys.readouterr().err
    assert _cli(root, "train", "--dataset", "mo", "--method", "gwot") == 2
    assert "family 'paired'" in capsys.readouterr().err
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["datasets"]["files"] = {"family": "multiome", "source": {"kind": "files", "domains": [
        {"name": "reh", "format": "csv", "rna": "raw/rna.csv", "atac": "raw/atac.csv"}]}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    assert _cli(root, "ingest", "--dataset", "files") == 2
    err = capsys.readouterr().err
    assert "raw/rna.csv" in err
    assert "file not found" in err
    assert not (root / "data/ingested/files").exists()
    assert _cli(root, "ingest", "--dataset", "mo") == 0
    assert _cli(root, "preprocess", "--dataset", "mo") == 0
    assert _cli(root, "train", "--dataset", "mo", "--method", "dualdann",
                "--set", "methods.dualdann.source_encoder=scfoundation") == 2
    assert "scfoundation_path: set it" in capsys.readouterr().err
    assert _cli(root, "train", "--dataset", "mo", "--method", "dualdann",
                "--set", "methods.dualdann.source_encoder=scfoundation",
                "--set", "methods.dualdann.scfoundation_path=weights/scfoundation") == 2
    err = capsys.readouterr().err
    assert "weights/scfoundation/models.ckpt" in err
    assert "checkpoint not found" in err
    assert not (root / "models/mo/dualdann").exists()


def test_monitor_flags_a_planted_rna_shift_of_new_multiome_cells_and_not_a_resample(project: Path) -> None:
    """The drift monitor works on the multiome family through its own projection (CPM → log1p → L2 → PCA)."""
    from xmodal.config import load_params
    from xmodal.families.multiome import MultiomeData, read_multiome, write_multiome
    from xmodal.stages import monitor

    root = project
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["datasets"]["mo"]["source"]["n_cells"] = 400  # enough cells for two-sample tests
    params["monitor"] = {"n_components": 10}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    assert _cli(root, "ingest", "--dataset", "mo") == 0
    assert _cli(root, "preprocess", "--dataset", "mo") == 0
    raw = read_multiome(root / "data/ingested/mo")
    split = read_multiome(root / "data/processed/mo").rna.obs["split"].astype(str)
    held = split.index[split != "train"]
    same = MultiomeData(rna=raw.rna[held].copy(), atac=raw.atac[held].copy())
    write_multiome(same, root / "new/resample")
    rna = same.rna.copy()
    x = np.asarray(rna.X.toarray() if hasattr(rna.X, "toarray") else rna.X, dtype=np.float32)
    half = x.shape[1] // 2
    x[:, :half] = np.round(x[:, :half] * 4 + 2)  # half the genes: higher capture and an offset
    rna.X = x
    write_multiome(MultiomeData(rna=rna, atac=same.atac.copy()), root / "new/shift")

    loaded = load_params(root / "params.yaml")
    shifted = monitor.run(loaded, dataset="mo", new="new/shift", root=root)
    shares = {name: m.drifted_share for name, m in shifted.modalities.items()}
    assert set(shares) == {"rna", "atac"}
    assert shifted.retrain, shares
    assert shares["rna"] >= 0.5, shares
    assert shares["atac"] < loaded.monitor.retrain_share, shares
    resample = monitor.run(loaded, dataset="mo", new="new/resample", root=root)
    assert not resample.retrain, {name: m.drifted_share for name, m in resample.modalities.items()}
