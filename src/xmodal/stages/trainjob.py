"""Training across nodes as a Kubeflow Trainer ``TrainJob``: ``torchrun`` running ``xmodal train`` on every node.

What the pipeline step does (:func:`run_trainjob`), for a method listed under ``pipeline.distributed``:

1. stage the processed dataset and the parameters under ``<staging>/<job>/`` in S3 (the nodes read them, never
   write them);
2. create the ``TrainJob`` (``trainer.kubeflow.org/v1alpha1``) through the Kubernetes API: ``numNodes`` nodes of
   the project image, each with its GPUs (or CPUs), on the configured ``TrainingRuntime`` (``torch-distributed``),
   which gives every node torchrun's ``PET_*`` variables (nodes, node rank, master address and port);
3. wait for its ``Complete`` (or ``Failed``) condition, deleting the job if the wait times out;
4. fetch the model node 0 put under ``<staging>/<job>/model/`` into the step's output.

What every node runs (:func:`node_main`, ``python -m xmodal.stages.trainjob node ...``): it fetches the staged data
into a scratch project root, runs ``torchrun --nproc-per-node <P> -m xmodal.cli train`` there with the method set
to ``strategy: ddp`` (torchrun reads the other settings from ``PET_*``), and, on node 0, uploads the model folder
rank 0 saved. The job's pods read the S3 credentials and endpoints from the same Secret and ConfigMap as every
pipeline task.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from xmodal.config import DistributedTraining, Params
from xmodal.errors import ConfigError, PipelineRunError, XmodalInputError

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "trainer.kubeflow.org", "v1alpha1", "trainjobs"
#: where a pod finds its own namespace
NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def job_name(method: str, dataset: str, *, suffix: str | None = None) -> str:
    """A DNS-1123 name of at most 63 characters: ``xm-<method>-<dataset>-<8 hex>``."""
    suffix = suffix or uuid.uuid4().hex[:8]
    stem = re.sub(r"[^a-z0-9-]+", "-", f"xm-{method}-{dataset}".lower()).strip("-")
    return f"{stem[: 62 - len(suffix)].rstrip('-')}-{suffix}"


def namespace_of(cfg: DistributedTraining) -> str:
    """``cfg.namespace``, else the namespace this pod runs in, else ``kubeflow``."""
    if cfg.namespace:
        return cfg.namespace
    return NAMESPACE_FILE.read_text().strip() if NAMESPACE_FILE.is_file() else "kubeflow"


def _env(params: Params) -> list[dict[str, Any]]:
    """The pods' environment: the S3/MLflow endpoints and credentials from the pipeline's ConfigMap and Secrets
    (each optional, as for every pipeline task), one thread per process, unbuffered logs."""
    cfg = params.pipeline
    env: list[dict[str, Any]] = [{"name": "PYTHONUNBUFFERED", "value": "1"}, {"name": "OMP_NUM_THREADS", "value": "1"}]
    env += [{"name": k, "valueFrom": {"configMapKeyRef": {"name": cfg.config_map, "key": k, "optional": True}}}
            for k in cfg.config_map_keys]
    for secret, keys in ((cfg.s3_secret, cfg.s3_secret_keys), (cfg.mlflow_secret, cfg.mlflow_secret_keys)):
        env += [{"name": k, "valueFrom": {"secretKeyRef": {"name": secret, "key": k, "optional": True}}} for k in keys]
    return env


def trainjob_manifest(params: Params, *, dataset: str, method: str, name: str, staging: str,
                      namespace: str) -> dict[str, Any]:
    """The ``TrainJob`` object for ``method`` on ``dataset`` (see the module docstring).

    Parameters
    ----------
    params
        ``pipeline.distributed[method]`` gives nodes, processes, resources, runtime and image.
    name
        The job's name (:func:`job_name`).
    staging
        ``s3://`` prefix of this job's staged data and model.
    namespace
        Where the job is created.

    Raises
    ------
    ConfigError
        When ``pipeline.distributed`` has no entry for ``method``.
    """
    from xmodal.components._image import GPU_IMAGE, IMAGE

    cfg = distributed_config(params, method)
    gpus = cfg.gpus_per_node
    resources: dict[str, str] = {}
    if cfg.cpu:
        resources["cpu"] = cfg.cpu
    if cfg.memory:
        resources["memory"] = cfg.memory
    if gpus:
        resources[cfg.accelerator_type] = str(gpus)
    args = ["-m", "xmodal.stages.trainjob", "node", "--staging", staging, "--dataset", dataset, "--method", method,
            "--nproc-per-node", str(cfg.procs), "--device", "cuda" if gpus else "cpu"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainJob",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/part-of": "xmodal", "xmodal.io/method": method,
                                "xmodal.io/dataset": dataset}},
        "spec": {
            "runtimeRef": {"name": cfg.runtime, "apiGroup": GROUP, "kind": cfg.runtime_kind},
            "trainer": {
                "image": cfg.image or (GPU_IMAGE if gpus else IMAGE),
                "command": ["python"],
                "args": args,
                "numNodes": cfg.num_nodes,
                "resourcesPerNode": {"requests": dict(resources), "limits": dict(resources)},
                "env": _env(params),
            },
        },
    }


def distributed_config(params: Params, method: str) -> DistributedTraining:
    """``pipeline.distributed[method]``, or a :class:`ConfigError` saying how to add it."""
    try:
        return params.pipeline.distributed[method]
    except KeyError:
        raise ConfigError(f"pipeline.distributed has no entry for {method!r}; add pipeline.distributed.{method}: "
                          "{num_nodes: 2, gpus_per_node: 1, staging: s3://<bucket>/<prefix>}") from None


def _api(api_client: Any) -> Any:
    """A ``CustomObjectsApi``: on the given client, else in-cluster credentials, else the local kubeconfig."""
    from kubernetes import client, config

    if api_client is None:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        api_client = client.ApiClient()
    return client.CustomObjectsApi(api_client)


def _condition(job: dict[str, Any]) -> tuple[str, str] | None:
    """``("Complete" | "Failed", message)`` once the job has ended, else ``None``."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and str(cond.get("status")) == "True":
            return str(cond["type"]), str(cond.get("message") or cond.get("reason") or "")
    return None


def submit_and_wait(manifest: dict[str, Any], *, api_client: Any = None, timeout: float, poll: float,
                    sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Create the ``TrainJob`` and wait until it completes.

    Returns
    -------
    dict
        The job as the API last returned it.

    Raises
    ------
    PipelineRunError
        The API refused the job (its message), the job failed (its condition's message), or it did not finish
        within ``timeout`` seconds (it is then deleted).
    """
    from kubernetes.client.exceptions import ApiException

    api = _api(api_client)
    meta = manifest["metadata"]
    where = f"TrainJob {meta['namespace']}/{meta['name']}"
    try:
        api.create_namespaced_custom_object(GROUP, VERSION, meta["namespace"], PLURAL, manifest)
    except ApiException as exc:
        raise PipelineRunError(f"the Kubernetes API refused {where} ({exc.status} {exc.reason}: "
                               f"{(exc.body or '')[:400]}); check that Kubeflow Trainer is installed, the runtime "
                               f"{manifest['spec']['runtimeRef']['name']!r} exists and the pipeline's service account "
                               "may create trainjobs") from None
    log.info("created %s: %d node(s)", where, manifest["spec"]["trainer"]["numNodes"])
    deadline = time.monotonic() + timeout
    while True:
        try:
            job = api.get_namespaced_custom_object(GROUP, VERSION, meta["namespace"], PLURAL, meta["name"])
        except ApiException as exc:
            raise PipelineRunError(f"cannot read {where} ({exc.status} {exc.reason})") from None
        ended = _condition(job)
        if ended is not None:
            kind, message = ended
            if kind == "Failed":
                raise PipelineRunError(f"{where} failed: {message or 'no message'}; its pods' logs say why "
                                       f"(kubectl logs -n {meta['namespace']} -l jobset.sigs.k8s.io/jobset-name="
                                       f"{meta['name']})")
            log.info("%s completed", where)
            return job
        if time.monotonic() > deadline:
            try:
                api.delete_namespaced_custom_object(GROUP, VERSION, meta["namespace"], PLURAL, meta["name"])
            finally:
                raise PipelineRunError(f"{where} did not finish within {timeout:g} s; it was deleted (raise "
                                       "pipeline.distributed.<method>.timeout)")
        sleep(poll)


def run_trainjob(params: Params, *, params_text: str, dataset: str, method: str, processed: str | Path,
                 output: str | Path, api_client: Any = None) -> dict[str, Any]:
    """Train ``method`` on the processed folder ``processed`` as a TrainJob; put the model folder in ``output``.

    Returns
    -------
    dict
        The model's ``info`` (what the KFP ``Model`` artifact's metadata shows) and the job's name.
    """
    from xmodal._s3 import delete_prefix, download_folder, upload_folder
    from xmodal.methods._base import read_model_meta

    cfg = distributed_config(params, method)
    name = job_name(method, dataset)
    staging = f"{cfg.staging}/{name}"
    with tempfile.TemporaryDirectory(prefix="xmodal-trainjob-") as tmp:
        (Path(tmp) / "params.yaml").write_text(params_text)
        upload_folder(tmp, f"{staging}/params")
    upload_folder(processed, f"{staging}/processed")
    manifest = trainjob_manifest(params, dataset=dataset, method=method, name=name, staging=staging,
                                 namespace=namespace_of(cfg))
    try:
        submit_and_wait(manifest, api_client=api_client, timeout=cfg.timeout, poll=cfg.poll_seconds)
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        download_folder(f"{staging}/model", out)
    finally:
        if not cfg.keep_staging:
            delete_prefix(staging)
    meta = read_model_meta(output, method=method)
    return {**{k: v for k, v in meta.get("info", {}).items() if isinstance(v, int | float | str | bool)},
            "trainjob": name}


# ---------------------------------------------------------------------- on every node
def node_main(argv: Sequence[str] | None = None) -> int:
    """What each node of the TrainJob runs (see the module docstring); returns torchrun's exit code."""
    from xmodal._s3 import download_folder, upload_folder
    from xmodal.stages._paths import model_dir, processed_dir

    parser = argparse.ArgumentParser(prog="python -m xmodal.stages.trainjob node")
    parser.add_argument("--staging", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument("--nproc-per-node", type=int, required=True)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    node = int(os.environ.get("PET_NODE_RANK", "0"))
    root = Path(tempfile.mkdtemp(prefix="xmodal-node-"))
    try:
        download_folder(f"{args.staging}/params", root)
        download_folder(f"{args.staging}/processed", processed_dir(root, args.dataset))
        m = args.method
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(args.nproc_per_node),
               "-m", "xmodal.cli", "train", "--dataset", args.dataset, "--method", m, "--params",
               str(root / "params.yaml"), "--root", str(root), "--set", f"methods.{m}.strategy=ddp",
               "--set", f"methods.{m}.device={args.device}", "--set", f"methods.{m}.devices=auto",
               "--set", f"methods.{m}.num_nodes=auto"]
        log.info("node %d: %s", node, " ".join(cmd))
        code = subprocess.run(cmd, cwd=root, check=False).returncode
        if code == 0 and node == 0:
            upload_folder(model_dir(root, args.dataset, m), f"{args.staging}/model")
        return code
    except XmodalInputError as exc:
        log.error("%s", exc)
        return 2
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":  # python -m xmodal.stages.trainjob node ...
    if len(sys.argv) < 2 or sys.argv[1] != "node":
        sys.exit("usage: python -m xmodal.stages.trainjob node --staging s3://... --dataset D --method M "
                 "--nproc-per-node P")
    sys.exit(node_main(sys.argv[2:]))


__all__ = ["distributed_config", "job_name", "namespace_of", "node_main", "run_trainjob", "submit_and_wait",
           "trainjob_manifest"]
