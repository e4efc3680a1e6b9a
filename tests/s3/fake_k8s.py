"""A fake Kubernetes API server on 127.0.0.1 for Kubeflow Trainer ``TrainJob`` objects, which runs them locally.

It answers the calls the ``kubernetes`` client makes for ``trainer.kubeflow.org/v1alpha1`` trainjobs (create, get,
delete), checks every created object the way the API server and the Trainer's admission would refuse a bad one
(422 with a ``Status`` body naming the field), and then *runs* the job as the Trainer's ``torch-distributed``
runtime would: one local process per node, with the job's command, args and environment (``valueFrom`` resolved
from the ConfigMaps and Secrets it was given, as the kubelet does) plus torchrun's ``PET_NNODES``,
``PET_NODE_RANK``, ``PET_MASTER_ADDR`` and ``PET_MASTER_PORT``. The job's status gets a ``Complete`` or ``Failed``
condition when its nodes exit. Every request is recorded.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PATH = re.compile(r"^/apis/trainer\.kubeflow\.org/v1alpha1/namespaces/([a-z0-9-]+)/trainjobs(?:/([a-z0-9-]+))?$")
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SPEC_FIELDS = {"runtimeRef", "trainer", "initializer", "labels", "annotations", "suspend", "managedBy",
               "podTemplateOverrides", "runtimePatches"}
TRAINER_FIELDS = {"image", "command", "args", "env", "numNodes", "resourcesPerNode", "numProcPerNode"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def problems(job: dict[str, Any], *, namespace: str, runtimes: set[str]) -> list[str]:
    """What the API server (schema) and the Trainer (runtime lookup) would refuse in a TrainJob."""
    out = []
    if job.get("apiVersion") != "trainer.kubeflow.org/v1alpha1" or job.get("kind") != "TrainJob":
        out.append("apiVersion/kind: expected trainer.kubeflow.org/v1alpha1 TrainJob")
    meta = job.get("metadata") or {}
    name = str(meta.get("name", ""))
    if not DNS1123.match(name) or len(name) > 63:
        out.append(f"metadata.name: {name!r} is not a DNS-1123 label of at most 63 characters")
    if meta.get("namespace", namespace) != namespace:
        out.append("metadata.namespace: does not match the request path")
    spec = job.get("spec") or {}
    unknown = set(spec) - SPEC_FIELDS
    if unknown:
        out.append(f"spec: unknown field(s) {sorted(unknown)}")
    ref = spec.get("runtimeRef") or {}
    if ref.get("apiGroup") != "trainer.kubeflow.org" or ref.get("kind") not in ("ClusterTrainingRuntime",
                                                                               "TrainingRuntime"):
        out.append("spec.runtimeRef: apiGroup trainer.kubeflow.org and a (Cluster)TrainingRuntime kind expected")
    elif ref.get("name") not in runtimes:
        out.append(f"spec.runtimeRef.name: runtime {ref.get('name')!r} not found")
    trainer = spec.get("trainer") or {}
    unknown = set(trainer) - TRAINER_FIELDS
    if unknown:
        out.append(f"spec.trainer: unknown field(s) {sorted(unknown)}")
    if not isinstance(trainer.get("numNodes"), int) or trainer["numNodes"] < 1:
        out.append("spec.trainer.numNodes: a positive integer expected")
    if not trainer.get("image"):
        out.append("spec.trainer.image: required")
    for key in ("command", "args"):
        if not isinstance(trainer.get(key, []), list) or not all(isinstance(a, str) for a in trainer.get(key, [])):
            out.append(f"spec.trainer.{key}: a list of strings expected")
    resources = trainer.get("resourcesPerNode") or {}
    if set(resources) - {"requests", "limits"}:
        out.append("spec.trainer.resourcesPerNode: only requests and limits")
    for env in trainer.get("env", []):
        refs = [k for k in ("value", "valueFrom") if k in env]
        if not env.get("name") or len(refs) != 1:
            out.append(f"spec.trainer.env: {env!r} needs a name and exactly one of value, valueFrom")
        elif "valueFrom" in env and len(env["valueFrom"]) != 1:
            out.append(f"spec.trainer.env[{env['name']}].valueFrom: exactly one source")
    return out


@dataclass
class FakeTrainer:
    """The fake API server's state: recorded requests, stored jobs, how it resolves ``valueFrom``, and switches."""

    config_maps: dict[str, dict[str, str]] = field(default_factory=dict)
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    runtimes: set[str] = field(default_factory=lambda: {"torch-distributed"})
    run_jobs: bool = True
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    jobs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    logs: dict[str, list[str]] = field(default_factory=dict)
    procs: dict[str, list[subprocess.Popen]] = field(default_factory=dict)
    server: ThreadingHTTPServer | None = None

    @property
    def host(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def client(self) -> Any:
        """A ``kubernetes`` ApiClient pointed at this server."""
        from kubernetes import client

        conf = client.Configuration()
        conf.host = self.host
        return client.ApiClient(conf)

    # ------------------------------------------------------------ running a job
    def _env(self, job: dict[str, Any], node: int, port: int) -> dict[str, str]:
        env = dict(os.environ)
        for item in job["spec"]["trainer"].get("env", []):
            if "value" in item:
                env[item["name"]] = item["value"]
                continue
            (kind, ref), = item["valueFrom"].items()
            store = self.config_maps if kind == "configMapKeyRef" else self.secrets
            value = store.get(ref["name"], {}).get(ref["key"])
            if value is not None:
                env[item["name"]] = value
            else:
                env.pop(item["name"], None)  # optional and missing: not set
        env.update(PET_NNODES=str(job["spec"]["trainer"]["numNodes"]), PET_NODE_RANK=str(node),
                   PET_MASTER_ADDR="127.0.0.1", PET_MASTER_PORT=str(port))
        return env

    def _run(self, key: tuple[str, str], job: dict[str, Any], workdir: Path) -> None:
        trainer = job["spec"]["trainer"]
        command = [sys.executable if trainer["command"][0] == "python" else trainer["command"][0],
                   *trainer["command"][1:], *trainer.get("args", [])]
        port = free_port()
        procs = []
        for node in range(trainer["numNodes"]):
            log = workdir / f"{key[1]}-node{node}.log"
            with log.open("w") as out:
                procs.append(subprocess.Popen(command, env=self._env(job, node, port), stdout=out,
                                              stderr=subprocess.STDOUT, cwd=workdir))
        self.procs[key[1]] = procs

        def wait() -> None:
            codes = [p.wait() for p in procs]
            self.logs[key[1]] = [(workdir / f"{key[1]}-node{n}.log").read_text() for n in range(len(procs))]
            if key not in self.jobs:  # deleted meanwhile
                return
            ok = all(c == 0 for c in codes)
            self.jobs[key]["status"] = {"conditions": [{
                "type": "Complete" if ok else "Failed", "status": "True",
                "reason": "JobsCompleted" if ok else "JobsFailed",
                "message": "" if ok else f"node exit codes {codes}"}]}

        threading.Thread(target=wait, daemon=True).start()

    def start(self, workdir: Path) -> FakeTrainer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, reason: str, message: str) -> None:
                self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
                                  "message": message, "code": code})

            def _route(self, method: str) -> None:
                match = PATH.match(self.path.split("?", 1)[0])
                body = None
                if method == "POST":
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")
                fake.requests.append((method, self.path, body))
                if match is None:
                    self._status(404, "NotFound", f"the server could not find the requested resource {self.path}")
                    return
                namespace, name = match.groups()
                if method == "POST" and name is None:
                    if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
                        self._status(415, "UnsupportedMediaType", "application/json expected")
                        return
                    found = problems(body, namespace=namespace, runtimes=fake.runtimes)
                    if found:
                        self._status(422, "Invalid", "TrainJob is invalid: " + "; ".join(found))
                        return
                    key = (namespace, body["metadata"]["name"])
                    if key in fake.jobs:
                        self._status(409, "AlreadyExists", f"trainjobs {key[1]!r} already exists")
                        return
                    fake.jobs[key] = {**body, "status": {}}
                    if fake.run_jobs:
                        fake._run(key, body, workdir)
                    self._send(201, fake.jobs[key])
                elif method == "GET" and name is not None and (namespace, name) in fake.jobs:
                    self._send(200, fake.jobs[(namespace, name)])
                elif method == "DELETE" and name is not None and (namespace, name) in fake.jobs:
                    job = fake.jobs.pop((namespace, name))
                    for proc in fake.procs.get(name, []):
                        proc.kill()
                    self._send(200, job)
                else:
                    self._status(404, "NotFound", f"trainjobs {name!r} not found")

            def do_POST(self) -> None:  # noqa: N802 - http.server's names
                self._route("POST")

            def do_GET(self) -> None:  # noqa: N802
                self._route("GET")

            def do_DELETE(self) -> None:  # noqa: N802
                self._route("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        for procs in self.procs.values():
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
