"""cycleae trained across nodes as a Kubeflow Trainer TrainJob, against a fake Kubernetes API server on loopback that
checks the request and runs the job's nodes as local processes (torchrun, 2 nodes × 1 CPU process), with the data
staged through a real S3 server (SeaweedFS)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fake_k8s import FakeTrainer

from xmodal.config import params_from_dict
from xmodal.errors import PipelineRunError

pytest.importorskip("tiledbsoma")

CYCLEAE = {"latent": 8, "classifier_width": 8, "batch_size": 16, "epochs": 2, "max_validation_cells": 100,
           "checkpoint_every": 5}


def _raw(bucket: str, prefix: str, **distributed: object) -> dict:
    return {
        "datasets": {"c": {"family": "census", "fields": ["cell_type", "sex", "assay"],
                           "source": {"kind": "synthetic_census", "n_cells": 800, "n_genes": 40, "seed": 2}}},
        "preprocess": {"census": {"n_top_genes": 30, "chunk_size": 60}},
        "methods": {"cycleae": CYCLEAE},
        "register": {"live_training": False},
        "runs": {"c-cycleae": {"dataset": "c", "method": "cycleae"}},
        "pipeline": {"distributed": {"cycleae": {
            "num_nodes": 2, "gpus_per_node": 0, "procs_per_node": 1, "cpu": "2", "memory": "4G",
            "staging": f"s3://{bucket}/{prefix}/trainjobs", "namespace": "team-a", "image": "xmodal:test",
            "poll_seconds": 0.5, "timeout": 600, **distributed}}},
    }


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from xmodal.stages import ingest, preprocess

    root = tmp_path_factory.mktemp("census")
    params = params_from_dict(_raw("b", "p"))
    ingest.run(params, dataset="c", root=root)
    preprocess.run(params, dataset="c", root=root)
    return root / "data/processed/c"


@pytest.fixture
def fake(s3_env, tmp_path: Path):
    trainer = FakeTrainer(config_maps={"xmodal-config": {"AWS_ENDPOINT_URL": s3_env.endpoint}},
                          secrets={"xmodal-s3-credentials": {"AWS_ACCESS_KEY_ID": s3_env.access_key,
                                                             "AWS_SECRET_ACCESS_KEY": s3_env.secret_key}})
    yield trainer.start(tmp_path)
    trainer.stop()


def _run(raw: dict, processed: Path, out: Path, fake: FakeTrainer) -> dict:
    from xmodal.stages.trainjob import run_trainjob

    text = yaml.safe_dump(raw)
    return run_trainjob(params_from_dict(raw), params_text=text, dataset="c", method="cycleae", processed=processed,
                        output=out, api_client=fake.client())


def test_a_trainjob_trains_cycleae_on_two_nodes(fake: FakeTrainer, s3_env, bucket: str, prefix: str,
                                                processed: Path, tmp_path: Path) -> None:
    from xmodal.methods import load_model

    info = _run(_raw(bucket, prefix), processed, tmp_path / "model", fake)
    posts = [body for method, _, body in fake.requests if method == "POST"]
    assert len(posts) == 1, fake.requests
    job = posts[0]
    assert job["metadata"]["namespace"] == "team-a"
    assert job["metadata"]["name"] == info["trainjob"]
    assert job["spec"]["runtimeRef"] == {"name": "torch-distributed", "apiGroup": "trainer.kubeflow.org",
                                         "kind": "ClusterTrainingRuntime"}
    trainer = job["spec"]["trainer"]
    assert trainer["numNodes"] == 2
    assert trainer["image"] == "xmodal:test"
    assert trainer["resourcesPerNode"] == {"requests": {"cpu": "2", "memory": "4G"}, "limits": {"cpu": "2",
                                                                                             "memory": "4G"}}
    args = trainer["args"]
    assert args[:3] == ["-m", "xmodal.stages.trainjob", "node"]
    assert args[args.index("--staging") + 1] == f"s3://{bucket}/{prefix}/trainjobs/{info['trainjob']}"
    assert args[args.index("--nproc-per-node") + 1] == "1"
    secret_env = {e["name"]: e["valueFrom"] for e in trainer["env"] if "valueFrom" in e}
    assert secret_env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "xmodal-s3-credentials",
                                                                "key": "AWS_ACCESS_KEY_ID", "optional": True}}
    # the job ran on both nodes: one model, trained by 2 processes, that node 0 uploaded
    model = load_model(tmp_path / "model")
    assert model.info["world_size"] == 2
    assert info["world_size"] == 2
    logs = fake.logs[info["trainjob"]]
    assert len(logs) == 2
    assert "rank 1 done (rank 0 saves the model)" in logs[1]
    assert json.loads((tmp_path / "model/model.json").read_text())["method"] == "cycleae"
    # the step followed the job, and removed what it staged
    assert any(method == "GET" for method, _, _ in fake.requests)
    assert s3_env.keys(bucket, f"{prefix}/trainjobs/") == []


def test_a_failed_job_is_reported(fake: FakeTrainer, bucket: str, prefix: str, processed: Path,
                                  tmp_path: Path) -> None:
    raw = _raw(bucket, prefix)
    raw["methods"]["cycleae"] = {**CYCLEAE, "batch_size": 100_000}  # more cells than the data: xmodal train fails
    with pytest.raises(PipelineRunError, match=r"TrainJob team-a/xm-cycleae-c-[0-9a-f]{8} failed: node exit codes"):
        _run(raw, processed, tmp_path / "model", fake)
    assert not (tmp_path / "model/model.json").exists()


def test_a_refused_job_says_why(fake: FakeTrainer, bucket: str, prefix: str, processed: Path,
                                tmp_path: Path) -> None:
    raw = _raw(bucket, prefix, runtime="no-such-runtime")
    with pytest.raises(PipelineRunError, match=r"refused .*422.*runtime 'no-such-runtime' not found"):
        _run(raw, processed, tmp_path / "model", fake)


def test_a_job_that_does_not_finish_is_deleted(fake: FakeTrainer, bucket: str, prefix: str, processed: Path,
                                               tmp_path: Path) -> None:
    fake.run_jobs = False
    raw = _raw(bucket, prefix, timeout=1.0, poll_seconds=0.2)
    with pytest.raises(PipelineRunError, match="did not finish within 1 s; it was deleted"):
        _run(raw, processed, tmp_path / "model", fake)
    assert [m for m, _, _ in fake.requests if m in ("POST", "DELETE")] == ["POST", "DELETE"]
    assert fake.jobs == {}
