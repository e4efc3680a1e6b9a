"""The Kubeflow pipelines: compiled YAML against KFP's protobuf schemas, platform settings, local run, submit."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from xmodal.cli import main

GPU = ["--set", "pipeline.resources.gwot.accelerator_count=1",
       "--set", "pipeline.resources.gwot.memory_limit=16G"]


def _cli(root: Path, *args: str) -> int:
    return main([*args, "--params", str(root / "params.yaml"), "--root", str(root)])


def _compile(root: Path, *extra: str, out: str = "compiled", name: str = "training") -> list[dict]:
    assert _cli(root, "pipeline", "compile", "--pipeline", name, "--output-dir", str(root / out), *extra) == 0
    return list(yaml.safe_load_all((root / out / f"{name}.yaml").read_text()))


def _add_batch(root: Path, name: str, *, batch_effect: float) -> None:
    """Declare another batch of the tiny synthetic experiment as the retraining pipeline's incoming data."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    source = {**params["datasets"]["tiny"]["source"], "batch": 1, "batch_effect": batch_effect}
    params["datasets"][name] = {"family": "paired", "source": source}
    params["pipeline"] = {"new_dataset": name}
    (root / "params.yaml").write_text(yaml.safe_dump(params))


@pytest.fixture
def two_batches(tiny_project: Path) -> Path:
    """The tiny project plus a second batch of the same synthetic experiment, with a planted batch effect."""
    _add_batch(tiny_project, "batch2", batch_effect=1.0)
    return tiny_project


def _executor_of(spec: dict, task: str) -> str:
    """The executor label of a task, searching nested DAGs (ParallelFor bodies are sub-DAGs)."""
    for component in [spec["root"], *spec["components"].values()]:
        tasks = component.get("dag", {}).get("tasks", {})
        if task in tasks:
            comp = spec["components"][tasks[task]["componentRef"]["name"]]
            return comp["executorLabel"]
    raise KeyError(task)


def test_compiled_yaml_parses_against_kfp_protobufs(tiny_project: Path) -> None:
    from google.protobuf import json_format
    from kfp.kubernetes import kubernetes_executor_config_pb2
    from kfp.pipeline_spec import pipeline_spec_pb2

    docs = _compile(tiny_project)
    assert len(docs) == 2  # PipelineSpec, then PlatformSpec (kfp-kubernetes settings)
    spec = json_format.ParseDict(docs[0], pipeline_spec_pb2.PipelineSpec())
    assert spec.pipeline_info.name == "xmodal-training"
    json_format.ParseDict(docs[1], pipeline_spec_pb2.PlatformSpec())
    executors = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for config in executors.values():
        json_format.ParseDict(config, kubernetes_executor_config_pb2.KubernetesExecutorConfig())
    # the strict parse can fail: an unknown field is rejected
    with pytest.raises(json_format.ParseError):
        json_format.ParseDict({**docs[0], "notAField": 1}, pipeline_spec_pb2.PipelineSpec())


def test_every_stage_is_a_task_and_methods_run_in_a_parallel_for(tiny_project: Path) -> None:
    spec = _compile(tiny_project)[0]
    root_tasks = spec["root"]["dag"]["tasks"]
    loops = [t for t in root_tasks.values() if "parameterIterator" in t]
    assert len(loops) == 1
    assert json.loads(loops[0]["parameterIterator"]["items"]["raw"]) == ["gwot"]
    for task in ("ingest", "preprocess", "register"):
        assert task in root_tasks
    loop_dag = spec["components"][loops[0]["componentRef"]["name"]]["dag"]["tasks"]
    assert {"train", "evaluate"} <= set(loop_dag)
    assert root_tasks["register"]["cachingOptions"] == {}  # the registry side effect is never cached
    assert root_tasks["ingest"]["cachingOptions"] == {"enableCache": True}


def test_gpu_settings_node_pool_and_secrets_reach_the_train_task(tiny_project: Path) -> None:
    spec, platform = _compile(tiny_project, *GPU)
    train_exec = _executor_of(spec, "train")
    container = spec["deploymentSpec"]["executors"][train_exec]["container"]
    assert container["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert container["resources"]["accelerator"]["resourceCount"] == "1"
    assert container["resources"]["resourceMemoryLimit"] == "16G"
    assert container["image"].endswith("-gpu")
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][train_exec]
    assert k8s["nodeSelector"]["labels"] == {"xmodal.io/pool": "gpu"}
    assert k8s["tolerations"] == [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}]
    secrets = {s["secretName"]: {e["envVar"] for e in s["keyToEnv"]} for s in k8s["secretAsEnv"]}
    assert secrets == {"xmodal-s3-credentials": {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"},
                       "xmodal-mlflow-credentials": {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}}
    assert k8s["configMapAsEnv"][0]["configMapName"] == "xmodal-config"
    # CPU-only tasks stay off the GPU pool and on the CPU image
    ingest_exec = _executor_of(spec, "ingest")
    assert "nodeSelector" not in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][ingest_exec]
    assert not spec["deploymentSpec"]["executors"][ingest_exec]["container"]["image"].endswith("-gpu")
    assert "accelerator" not in spec["deploymentSpec"]["executors"][ingest_exec]["container"].get("resources", {})


def test_a_distributed_method_trains_through_a_trainjob_task(tiny_project: Path) -> None:
    """``pipeline.distributed.<method>``: its train task is the TrainJob component, in a loop of its own, on the default
    (CPU) resources — the nodes get the GPUs, not the step that submits them; the other methods are unchanged."""
    params = yaml.safe_load((tiny_project / "params.yaml").read_text())
    params["runs"]["tiny-geoadvae"] = {"dataset": "tiny", "method": "geoadvae"}
    (tiny_project / "params.yaml").write_text(yaml.safe_dump(params))
    spec, platform = _compile(tiny_project, *GPU, "--set", "pipeline.distributed.geoadvae.num_nodes=4",
                              "--set", "pipeline.distributed.geoadvae.staging=s3://lab/trainjobs")
    loops = {json.loads(t["parameterIterator"]["items"]["raw"])[0]: t for t in spec["root"]["dag"]["tasks"].values()
             if "parameterIterator" in t}
    assert set(loops) == {"gwot", "geoadvae"}
    tasks = {m: spec["components"][t["componentRef"]["name"]]["dag"]["tasks"] for m, t in loops.items()}
    assert tasks["geoadvae"]["train-distributed"]["taskInfo"]["name"] == "train (TrainJob)"
    assert "train" in tasks["gwot"]
    executor = spec["components"][tasks["geoadvae"]["train-distributed"]["componentRef"]["name"]]["executorLabel"]
    container = spec["deploymentSpec"]["executors"][executor]["container"]
    assert "train_distributed_step" in container["command"][-1]
    assert "accelerator" not in container.get("resources", {})
    assert not container["image"].endswith("-gpu")


def test_compiling_both_pipelines_is_reproducible_byte_for_byte(two_batches: Path) -> None:
    for out in ("one", "two"):
        assert _cli(two_batches, "pipeline", "compile", "--output-dir", str(two_batches / out)) == 0
    for name in ("training.yaml", "retraining.yaml"):
        assert (two_batches / "one" / name).read_bytes() == (two_batches / "two" / name).read_bytes()


def test_retraining_runs_training_only_under_the_drift_condition(two_batches: Path) -> None:
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    spec, _platform = _compile(two_batches, name="retraining")
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    root_tasks = spec["root"]["dag"]["tasks"]
    assert {"monitor", "ingest", "ingest-2", "preprocess"} <= set(root_tasks)
    condition = next(t for t in root_tasks.values() if "triggerPolicy" in t)
    assert "monitor" in condition["triggerPolicy"]["condition"]
    # the branch waits for monitor, and for the reference's folders its register task judges the gates on
    assert condition["dependentTasks"] == ["ingest", "monitor", "preprocess"]
    branch = spec["components"][condition["componentRef"]["name"]]["dag"]["tasks"]
    assert {"ingest-3", "preprocess-2", "register"} <= set(branch)  # the training tasks, in the branch
    register_inputs = branch["register"]["inputs"]["artifacts"]
    assert register_inputs["reference_ingested"]["componentInputArtifact"].endswith("ingest-ingested")
    assert register_inputs["reference_processed"]["componentInputArtifact"].endswith("preprocess-processed")
    assert spec["root"]["inputDefinitions"]["parameters"]["new_dataset"]["defaultValue"] == "batch2"


def _mlflow(root: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_training_then_retraining_run_locally_and_the_retrained_model_challenges_the_champion(
        two_batches: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert _cli(two_batches, "pipeline", "run", "--local") == 0
    client = _mlflow(two_batches)
    assert client.get_registered_model("xmodal-gwot-tiny").aliases == {"challenger": 1, "champion": 1}
    version = client.get_model_version("xmodal-gwot-tiny", "1")
    run = client.get_run(version.run_id)
    assert run.data.metrics["test/foscttm"] < 0.5
    # the model's artifacts live in the project, not in a step's scratch folder
    assert list((two_batches / "mlartifacts").rglob("model.json"))
    assert "MLFLOW_TRACKING_URI" not in __import__("os").environ
    capsys.readouterr()

    # batch2 carries a planted batch effect: monitor flags it, the model retrained on it joins the same
    # registered model as version 2 and is compared with the champion on batch2's held-out cells
    assert _cli(two_batches, "pipeline", "run", "--local", "--pipeline", "retraining") == 0
    printed = capsys.readouterr().out
    assert "retrain: yes" in printed
    assert [m.name for m in client.search_registered_models()] == ["xmodal-gwot-tiny"]
    retrained = client.get_model_version("xmodal-gwot-tiny", "2")
    assert client.get_run(retrained.run_id).data.tags["xmodal.dataset"] == "batch2"
    assert client.get_registered_model("xmodal-gwot-tiny").aliases["challenger"] == 2
    decisions = sorted((two_batches / ".kfp-local").glob("xmodal-retraining-*/**/decisions"))
    assert len(decisions) == 1
    row = decisions[0].read_text().splitlines()[-1]
    assert row.startswith("| batch2 | gwot | xmodal-gwot-tiny | 2 |")
    assert "challenger" in row
    assert "vs champion" in row


def test_retraining_without_drift_skips_training(tiny_project: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    _add_batch(tiny_project, "same_batch", batch_effect=0.0)  # new cells, same experiment, no shift
    assert _cli(tiny_project, "pipeline", "run", "--local", "--pipeline", "retraining") == 0
    printed = capsys.readouterr().out
    assert "retrain: no" in printed
    assert "training branch was skipped" in printed
    run_dir = next((tiny_project / ".kfp-local").glob("xmodal-retraining-*"))
    assert (run_dir / "monitor").is_dir()
    assert not list(run_dir.rglob("train"))
    assert not list(run_dir.rglob("decisions"))
    assert not (tiny_project / "mlflow.db").exists()


def test_submit_posts_the_compiled_pipeline_to_the_kfp_api(tiny_project: Path) -> None:
    from fake_kfp import FakeKfp

    with FakeKfp() as kfp:
        assert _cli(tiny_project, "pipeline", "submit", "--host", kfp.host, "--experiment", "ci", "--wait", *GPU) == 0
        assert _cli(tiny_project, "pipeline", "submit", "--host", kfp.host, "--recurring",
                    "--cron", "0 0 4 * * *") == 0
    posts = {r["path"].rsplit("/", 1)[-1]: r["body"] for r in kfp.requests if r["method"] == "POST"}
    assert posts["experiments"]["display_name"] == "ci"
    run = posts["runs"]
    assert run["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "xmodal-training"
    train_k8s = [e for e in run["pipeline_spec"]["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"][
        "executors"].values() if "nodeSelector" in e]
    assert train_k8s, "the GPU node pool settings travel with the submitted spec"
    assert run["experiment_id"] == "exp-1"
    assert posts["recurringruns"]["trigger"]["cron_schedule"]["cron"] == "0 0 4 * * *"
    assert any(r["method"] == "GET" and r["path"].endswith("/runs/run-1") for r in kfp.requests)  # --wait polled


def test_unknown_pipeline_setting_exits_2(tiny_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(tiny_project, "pipeline", "compile", "--set", "pipeline.resources.gwot.gpus=1") == 2
    assert "pipeline.resources.gwot" in capsys.readouterr().err


def test_a_failed_task_ends_the_local_run_with_one_message_and_exit_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = {"datasets": {"broken": {"family": "paired", "source": {
        "kind": "csv", "modality_a": "raw/missing_a.csv", "modality_b": "raw/missing_b.csv"}}},
        "runs": {"broken-gwot": {"dataset": "broken", "method": "gwot"}},
        "pipeline": {"defaults": {"retries": 3}}}  # off in local runs: no 3 × 30 s back-off
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert _cli(tmp_path, "pipeline", "run", "--local") == 1
    captured = capsys.readouterr()
    assert "failed in task 'ingest'" in captured.err
    assert "Traceback" not in captured.err
    assert "missing_a.csv: modality_a: file not found" in captured.out  # the task's own message, above
    plain = re.sub(r"\x1b\[[0-9;]*m", "", captured.out)  # kfp colours task names
    assert plain.count("Executing task 'ingest'") == 1  # no retry
