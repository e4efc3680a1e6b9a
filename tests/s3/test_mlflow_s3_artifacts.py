"""``xmodal register`` with MLflow artifacts in S3 (tracking store: sqlite in the project)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from xmodal.cli import main

NAME = "xmodal-gwot-tiny"


def _cli(root: Path, *args: str) -> int:
    return main([*args, "--params", str(root / "params.yaml"), "--root", str(root)])


def test_register_puts_the_model_into_the_bucket_and_loads_it_back(
    tiny_project: Path, s3_env, bucket: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xmodal.families.paired._data import read_paired
    from xmodal.methods import load_model
    from xmodal.methods.gwot import GWOT
    from xmodal.tracking import load_registered

    # as on a cluster running MLflow against MinIO/SeaweedFS: MLflow's own endpoint variable
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", s3_env.endpoint)
    root = tiny_project
    location = f"s3://{bucket}/{prefix}/mlflow"
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["register"] = {"artifact_location": location, "gates": {"gwot": {"foscttm": {"max": 0.9}}}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("ingest", "preprocess"):
        assert _cli(root, stage, "--dataset", "tiny") == 0
    for stage in ("train", "evaluate"):
        assert _cli(root, stage, "--dataset", "tiny", "--method", "gwot") == 0

    assert _cli(root, "register", "--dataset", "tiny", "--method", "gwot") == 0

    decision = json.loads((root / "reports/registry/tiny/gwot/decision.json").read_text())
    assert decision["decision"] == "promoted"
    keys = s3_env.keys(bucket, f"{prefix}/mlflow/")
    names = {key.rsplit("/", 1)[-1] for key in keys}
    assert {"MLmodel", "decision.json", "embedding.png"} <= names, sorted(keys)
    run_id = decision["run_id"]
    assert any(key.startswith(f"{prefix}/mlflow/{run_id}/artifacts/") for key in keys)
    assert not (root / "mlartifacts").exists()  # nothing went to the local default artifact root

    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    loaded = load_registered(f"models:/{NAME}@champion", tracking_uri=tracking_uri)
    assert isinstance(loaded.model, GWOT)
    cells = np.asarray(read_paired(root / "data/processed/tiny").split("validation").b.X)
    local = load_model(root / "models/tiny/gwot")
    np.testing.assert_allclose(loaded.model.transform(cells, modality="b"),
                               local.transform(cells, modality="b"))
