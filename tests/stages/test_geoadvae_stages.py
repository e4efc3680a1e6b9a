"""geoadvae through the CLI: train (with --resume), evaluate, register; gwot refuses --resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from xmodal.cli import main

GEOADVAE = {"dim": 16, "latent_dim": 4, "max_iter": 30, "batch_size": 16, "phase_durations": [10, 10, 10],
            "prior_clusters": 4, "prior_loss_warmup": 5, "checkpoint_every": 10, "log_every": 5}


def _cli(root: Path, *args: str) -> int:
    return main([*args, "--params", str(root / "params.yaml"), "--root", str(root)])


@pytest.fixture
def project(tiny_project: Path) -> Path:
    params = yaml.safe_load((tiny_project / "params.yaml").read_text())
    params["methods"]["geoadvae"] = GEOADVAE
    params["runs"]["tiny-geoadvae"] = {"dataset": "tiny", "method": "geoadvae"}
    (tiny_project / "params.yaml").write_text(yaml.safe_dump(params))
    assert _cli(tiny_project, "ingest", "--dataset", "tiny") == 0
    assert _cli(tiny_project, "preprocess", "--dataset", "tiny") == 0
    return tiny_project


def test_train_resume_evaluate_register(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = project
    assert _cli(root, "train", "--dataset", "tiny", "--method", "geoadvae") == 0
    weights = (root / "models/tiny/geoadvae/weights.pt").read_bytes()
    assert (root / "checkpoints/tiny/geoadvae/checkpoint.pt").is_file()
    assert (root / "models/tiny/geoadvae/loss_curves.png").is_file()
    # resuming a finished run changes nothing; the saved model is byte-identical
    assert _cli(root, "train", "--dataset", "tiny", "--method", "geoadvae", "--resume") == 0
    assert (root / "models/tiny/geoadvae/weights.pt").read_bytes() == weights

    assert _cli(root, "evaluate", "--dataset", "tiny", "--method", "geoadvae") == 0
    metrics = json.loads((root / "reports/tiny/geoadvae/metrics.json").read_text())["test"]
    assert 0.0 <= metrics["foscttm"] <= 1.0
    assert {"neighborhood_matching_k5", "neighborhood_matching_k50", "label_transfer_accuracy"} <= set(metrics)

    assert _cli(root, "register", "--dataset", "tiny", "--method", "geoadvae") == 0
    decision = json.loads((root / "reports/registry/tiny/geoadvae/decision.json").read_text())
    assert decision["model_name"] == "xmodal-geoadvae-tiny"
    assert decision["version"] == "1"

    # embedding API: raw cells of both modalities (MuData) → codes in obsm, input untouched
    import mudata as md

    from xmodal.families.paired._preprocess import load_preprocessor
    from xmodal.methods import embed, load_model

    raw = md.read_h5mu(root / "data/ingested/tiny/data.h5mu")
    preps = {m: load_preprocessor(root / f"data/processed/tiny/preprocessor_{m}") for m in ("a", "b")}
    model = load_model(root / "models/tiny/geoadvae")
    out = embed(model, raw, preprocessors=preps)
    for name in raw.mod:
        assert out.mod[name].obsm["X_geoadvae"].shape == (raw.mod[name].n_obs, 4)
        assert "X_geoadvae" not in raw.mod[name].obsm
    one = embed(model, raw.mod[list(raw.mod)[1]], modality="b", preprocessors=preps)
    assert (one.obsm["X_geoadvae"] == out.mod[list(raw.mod)[1]].obsm["X_geoadvae"]).all()
    from xmodal.errors import XmodalInputError

    with pytest.raises(XmodalInputError, match="input features"):
        embed(model, raw.mod[list(raw.mod)[0]], modality="a")  # raw features without the preprocessor

    capsys.readouterr()
    assert _cli(root, "train", "--dataset", "tiny", "--method", "gwot", "--resume") == 2
    assert "does not checkpoint" in capsys.readouterr().err


def test_bad_geoadvae_params_name_the_key(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(project, "train", "--dataset", "tiny", "--method", "geoadvae",
                "--set", "methods.geoadvae.loss_schedule={kl: 1, gww: 3}") == 2
    err = capsys.readouterr().err
    assert "methods.geoadvae.loss_schedule" in err
    assert "gww" in err


def test_training_is_logged_live_and_register_attaches_the_model_to_that_run(project: Path) -> None:
    """The MLflow run is opened when training starts (per-step metrics, dataset inputs with their content hashes);
    register adds the model to that run instead of creating another one."""
    from mlflow import MlflowClient

    root = project
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["register"]["live_training"] = True
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    assert _cli(root, "train", "--dataset", "tiny", "--method", "geoadvae") == 0
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("xmodal")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["xmodal.training_run"] == "true"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss_total")]
    assert steps == [*range(0, GEOADVAE["max_iter"], GEOADVAE["log_every"]), GEOADVAE["max_iter"] - 1]
    assert run.data.params["method.lr"] == "0.0002"
    schema = json.loads((root / "data/processed/tiny/schema.json").read_text())
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert {d.dataset.digest for d in inputs.values()} == {m["sha256"][:36] for m in schema["modalities"].values()}
    assert all(d.tags[0].value == "training" for d in inputs.values())

    assert _cli(root, "evaluate", "--dataset", "tiny", "--method", "geoadvae") == 0
    assert _cli(root, "register", "--dataset", "tiny", "--method", "geoadvae") == 0
    decision = json.loads((root / "reports/registry/tiny/geoadvae/decision.json").read_text())
    assert decision["run_id"] == run.info.run_id
    (after,) = client.search_runs([experiment.experiment_id])  # still one run, now with the model and metrics
    assert after.outputs.model_outputs
    assert "test/foscttm" in after.data.metrics
    assert after.info.end_time == run.info.end_time  # its time in the UI is the training's, not register's
    assert after.info.status == "FINISHED"
