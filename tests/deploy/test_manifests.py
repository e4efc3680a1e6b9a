"""The Kubernetes manifests in ``k8s/``: every overlay renders with ``kubectl kustomize`` and validates
against the Kubernetes API schemas (``kubernetes-validate --strict``), and the rules the cluster relies on
hold: pinned images, secrets only referenced, limits and non-root everywhere, dev and prod kept apart, and
the names the pipeline uses (ConfigMap, Secret, service account, GPU pool) present and spelled alike."""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _deploytools import REPO, package_version, require_tool

from xmodal.config import PipelineConfig

K8S = REPO / "k8s"
OVERLAYS = ("dev", "prod")
NAMESPACES = {"dev": "xmodal-dev", "prod": "xmodal"}
#: the Kubernetes version the manifests are validated against (bundled by kubernetes-validate)
K8S_VERSION = "1.32.0"
GPU_SMOKE_TEST = K8S / "examples" / "gpu-node-pool" / "gpu-smoke-test.yaml"
EKSCTL_EXAMPLE = K8S / "examples" / "gpu-node-pool" / "eksctl-gpu-nodegroup.yaml"
#: the Secrets the manifests may reference, and their keys (created by hand: k8s/README.md)
SECRETS = {
    "xmodal-s3-credentials": {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"},
    "xmodal-mlflow-db": {"POSTGRES_USER", "POSTGRES_PASSWORD"},
}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass", "StorageClass",
                  "PersistentVolume", "CustomResourceDefinition"}


# ------------------------------------------------------------------------------------------------ helpers
def _documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def _pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in WORKLOADS:
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]
        elif doc["kind"] == "CronJob":
            yield f"CronJob/{doc['metadata']['name']}", doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif doc["kind"] == "Pod":
            yield f"Pod/{doc['metadata']['name']}", doc["spec"]


def _containers(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(where, pod spec, container) for every container and init container."""
    for where, spec in _pod_specs(docs):
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            yield f"{where}:{container['name']}", spec, container


def _is_pinned(image: str) -> bool:
    """A tag that is not ``latest`` (after the last ``/``, so a registry port does not count), or a digest."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition("/")[2].partition(":")
    return bool(name) and bool(tag) and tag != "latest"


def _validate(tmp_path: Path, docs: list[dict[str, Any]], name: str) -> subprocess.CompletedProcess[str]:
    target = tmp_path / f"{name}.yaml"
    target.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    validator = require_tool("kubernetes-validate")
    return subprocess.run([validator, "-k", K8S_VERSION, "--strict", str(target)],
                          capture_output=True, text=True, timeout=120, check=False)


def _assert_valid(result: subprocess.CompletedProcess[str], docs: list[dict[str, Any]]) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # kubernetes-validate exits 0 on a kind it has no schema for (a CRD, a typo in apiVersion): only a
    # "passed" line per document proves every one was checked
    assert "Couldn't find schema" not in output, output
    assert output.count(" passed for resource ") == len(docs), output


# ----------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def version() -> str:
    return package_version()


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Each overlay rendered once by ``kubectl kustomize``."""
    kubectl = require_tool("kubectl")
    out = {}
    for overlay in OVERLAYS:
        result = subprocess.run([kubectl, "kustomize", str(K8S / "overlays" / overlay)],
                                capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, f"kubectl kustomize k8s/overlays/{overlay}:\n{result.stderr}"
        out[overlay] = _documents(result.stdout)
        assert out[overlay], f"k8s/overlays/{overlay} renders nothing"
    return out


def _config(docs: list[dict[str, Any]]) -> dict[str, str]:
    return _find(docs, "ConfigMap", PipelineConfig().config_map)["data"]


# ------------------------------------------------------------------------------------------ validity
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_validates_against_the_kubernetes_schemas(overlay: str, rendered, tmp_path: Path) -> None:
    docs = rendered[overlay]
    _assert_valid(_validate(tmp_path, docs, overlay), docs)


def test_gpu_smoke_test_example_validates(tmp_path: Path) -> None:
    docs = _documents(GPU_SMOKE_TEST.read_text())
    _assert_valid(_validate(tmp_path, docs, "gpu-smoke-test"), docs)


def test_validator_rejects_an_unknown_field(rendered, tmp_path: Path) -> None:
    """The strict check can fail: one misspelt field in the MLflow Deployment is an error."""
    broken = copy.deepcopy(rendered["dev"])
    container = _find(broken, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
    container["imagePullPolicyy"] = "IfNotPresent"
    result = _validate(tmp_path, broken, "broken")
    assert result.returncode != 0
    assert "imagePullPolicyy" in result.stdout + result.stderr


def test_a_kind_without_schema_is_not_taken_as_valid(tmp_path: Path) -> None:
    """Why :func:`_assert_valid` counts "passed" lines: a kind without a schema exits 0 with a warning."""
    docs = _documents(EKSCTL_EXAMPLE.read_text())  # an eksctl ClusterConfig, not a Kubernetes object
    result = _validate(tmp_path, docs, "eksctl")
    with pytest.raises(AssertionError):
        _assert_valid(result, docs)


# ------------------------------------------------------------------------------------------- content
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_image_is_pinned(overlay: str, rendered) -> None:
    images = {where: c["image"] for where, _, c in _containers(rendered[overlay])}
    assert images, "no container rendered"
    loose = {where: image for where, image in images.items() if not _is_pinned(image)}
    assert not loose, f"images without an explicit tag (or with :latest): {loose}"


def test_pin_check_catches_latest_and_untagged_images() -> None:
    assert not _is_pinned("postgres")
    assert not _is_pinned("ghcr.io/mlflow/mlflow:latest")
    assert not _is_pinned("registry.local:5000/xmodal")  # the port is not a tag
    assert _is_pinned("registry.local:5000/xmodal:0.1.0")
    assert _is_pinned("postgres@sha256:" + "0" * 64)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_only_referenced(overlay: str, rendered) -> None:
    docs = rendered[overlay]
    assert not [d["metadata"]["name"] for d in docs if d["kind"] == "Secret"], "a Secret is rendered"
    refs = set()
    for where, _, container in _containers(docs):
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs.add((ref["name"], ref["key"]))
            elif any(word in env["name"] for word in ("PASSWORD", "SECRET", "ACCESS_KEY")):
                # a credential may only be composed from referenced ones, never written out
                assert "$(" in env.get("value", ""), f"{where}: {env['name']} has a literal value"
        assert "envFrom" not in container or all("secretRef" not in e for e in container["envFrom"]), where
    unknown = {(name, key) for name, key in refs if key not in SECRETS.get(name, set())}
    assert not unknown, f"references to secrets/keys k8s/README.md does not document: {unknown}"
    assert {name for name, _ in refs} == set(SECRETS)


def test_no_secret_object_is_committed_under_k8s() -> None:
    for path in sorted(K8S.rglob("*.y*ml")):
        for doc in _documents(path.read_text()):
            assert doc.get("kind") != "Secret", f"{path.relative_to(REPO)} defines a Secret"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_limits_and_runs_as_non_root(overlay: str, rendered) -> None:
    for where, pod, container in _containers(rendered[overlay]):
        limits = container.get("resources", {}).get("limits", {})
        assert {"cpu", "memory"} <= set(limits), f"{where}: limits {limits}"
        assert container.get("resources", {}).get("requests"), f"{where}: no requests"
        context = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
        assert context.get("runAsNonRoot") is True, f"{where}: runAsNonRoot is not set"
        assert context.get("runAsUser", 1) != 0, f"{where}: runs as uid 0"
        assert container.get("securityContext", {}).get("allowPrivilegeEscalation") is False, where
        assert container["securityContext"].get("capabilities", {}).get("drop") == ["ALL"], where


def test_namespaces_differ(rendered) -> None:
    for overlay, namespace in NAMESPACES.items():
        docs = rendered[overlay]
        assert [d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"] == [namespace]
        misplaced = {f"{d['kind']}/{d['metadata']['name']}": d["metadata"].get("namespace")
                     for d in docs if d["kind"] not in CLUSTER_SCOPED
                     and d["metadata"].get("namespace") != namespace}
        assert not misplaced, f"{overlay}: not in {namespace}: {misplaced}"
    assert len(set(NAMESPACES.values())) == len(NAMESPACES)


def test_dev_has_the_s3_store_and_prod_does_not(rendered) -> None:
    dev, prod = rendered["dev"], rendered["prod"]
    store = _find(dev, "Deployment", "seaweedfs")
    _find(dev, "Service", "seaweedfs")
    _find(dev, "PersistentVolumeClaim", "seaweedfs-data")
    container = store["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("chrislusf/seaweedfs:")
    assert "-bucket=xmodal" in container["args"]
    assert _config(dev)["MLFLOW_S3_ENDPOINT_URL"] == "http://seaweedfs:8333"

    assert not [d for d in prod if "seaweedfs" in yaml.safe_dump(d)], "prod renders the dev S3 store"
    endpoint = _config(prod)["MLFLOW_S3_ENDPOINT_URL"]
    assert endpoint.startswith("https://")
    assert "seaweedfs" not in endpoint
    assert _config(prod)["AWS_ENDPOINT_URL"] == endpoint


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_config_map_carries_what_the_pipeline_reads(overlay: str, rendered, version: str) -> None:
    data = _config(rendered[overlay])
    assert set(PipelineConfig().config_map_keys) <= set(data)
    assert data["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert data["XMODAL_IMAGE"] == f"ghcr.io/xmodal/xmodal:{version}"
    assert data["XMODAL_GPU_IMAGE"] == f"ghcr.io/xmodal/xmodal:{version}-gpu"
    assert data["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_mlflow_server_runs_on_postgres_and_s3(overlay: str, rendered) -> None:
    docs = rendered[overlay]
    service = _find(docs, "Service", "mlflow")
    assert [p["port"] for p in service["spec"]["ports"]] == [5000]
    container = _find(docs, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["mlflow"]
    assert container["args"][0] == "server"
    assert "--serve-artifacts" in container["args"]
    env = {e["name"]: e for e in container["env"]}
    backend = env["MLFLOW_BACKEND_STORE_URI"]["value"]
    assert backend.startswith("postgresql://$(POSTGRES_USER):$(POSTGRES_PASSWORD)@postgres:5432/")
    # $(VAR) expands only from variables defined earlier in the list
    names = [e["name"] for e in container["env"]]
    assert names.index("POSTGRES_PASSWORD") < names.index("MLFLOW_BACKEND_STORE_URI")
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "xmodal-mlflow-db"
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "xmodal-s3-credentials"
    assert "configMapKeyRef" in env["MLFLOW_S3_ENDPOINT_URL"]["valueFrom"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health", probe
    database = _find(docs, "StatefulSet", "postgres")
    assert database["spec"]["template"]["spec"]["containers"][0]["image"].startswith("postgres:16.")
    assert database["spec"]["volumeClaimTemplates"], "the database has no persistent volume"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pipeline_runner_rbac_is_namespaced_and_narrow(overlay: str, rendered) -> None:
    docs = rendered[overlay]
    assert not [d for d in docs if d["kind"] in {"ClusterRole", "ClusterRoleBinding"}]
    _find(docs, "ServiceAccount", "xmodal-pipeline-runner")
    role = _find(docs, "Role", "xmodal-pipeline-runner")
    for rule in role["rules"]:
        assert "*" not in rule["verbs"], rule
        assert "*" not in rule["resources"], rule
        if "secrets" in rule["resources"]:
            assert rule["verbs"] == ["get"], rule
            assert set(rule["resourceNames"]) >= {PipelineConfig().s3_secret}, rule
    granted = {(r, v) for rule in role["rules"] for r in rule["resources"] for v in rule["verbs"]}
    for needed in [("pods", "get"), ("pods/log", "get"), ("configmaps", "get"), ("secrets", "get"),
                   ("persistentvolumeclaims", "create"), ("events", "list"), ("trainjobs", "create"),
                   ("trainjobs", "get"), ("trainjobs", "delete")]:
        assert needed in granted, needed
    assert ("pods", "create") not in granted
    trainer = [rule for rule in role["rules"] if "trainjobs" in rule["resources"]]
    assert [rule["apiGroups"] for rule in trainer] == [["trainer.kubeflow.org"]]
    binding = _find(docs, "RoleBinding", "xmodal-pipeline-runner")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "xmodal-pipeline-runner"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "xmodal-pipeline-runner",
                                    "namespace": NAMESPACES[overlay]}]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kfp_launcher_points_runs_at_the_s3_store(overlay: str, rendered) -> None:
    data = _find(rendered[overlay], "ConfigMap", "kfp-launcher")["data"]
    assert data["defaultPipelineRoot"].startswith("s3://")
    default = yaml.safe_load(data["providers"])["s3"]["default"]
    assert default["credentials"]["secretRef"] == {"secretName": PipelineConfig().s3_secret,
                                                   "accessKeyKey": "AWS_ACCESS_KEY_ID",
                                                   "secretKeyKey": "AWS_SECRET_ACCESS_KEY"}
    # the launcher's endpoint is the store MLflow and the tasks use
    endpoint = _config(rendered[overlay])["AWS_ENDPOINT_URL"]
    assert endpoint.split("://", 1)[1] == default["endpoint"]
    assert default["disableSSL"] is endpoint.startswith("http://")


def test_gpu_pool_matches_the_pipeline_and_prod_caps_gpus(rendered, version: str) -> None:
    pool = PipelineConfig().gpu_pool
    job = _documents(GPU_SMOKE_TEST.read_text())[0]
    spec = job["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == pool.node_selector == {"xmodal.io/pool": "gpu"}
    expected = [t.model_dump(exclude_none=True) for t in pool.tolerations]
    assert spec["tolerations"] == expected == [{"key": "nvidia.com/gpu", "operator": "Exists",
                                                "effect": "NoSchedule"}]
    container = spec["containers"][0]
    assert container["image"] == f"ghcr.io/xmodal/xmodal:{version}-gpu"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1

    nodegroup = yaml.safe_load(EKSCTL_EXAMPLE.read_text())["managedNodeGroups"][0]
    assert nodegroup["labels"] == pool.node_selector
    assert [t["key"] for t in nodegroup["taints"]] == ["nvidia.com/gpu"]
    assert nodegroup["taints"][0]["effect"] == "NoSchedule"

    quota = _find(rendered["prod"], "ResourceQuota", "xmodal-gpu")
    assert int(quota["spec"]["hard"]["requests.nvidia.com/gpu"]) >= 1
    assert nodegroup["maxSize"] <= int(quota["spec"]["hard"]["requests.nvidia.com/gpu"])
