"""A real Docker engine for the container tests: Debian's ``dockerd`` as a plain process.

No systemd, no iptables, no bridge (``--iptables=false --bridge=none``), ``overlay2`` storage where the kernel
allows it, else ``vfs`` (``XMODAL_DOCKER_STORAGE`` forces one): it runs on the
development machines and in CI as root (``make container-tools`` installs Debian's ``docker.io``). Its socket,
exec root and log live in a temporary folder; its data root (images, layers: several GB with ``vfs``) too, unless
``XMODAL_DOCKER_DATA_ROOT`` names a folder to keep between runs (a warm build cache). Containers reach the network
only with ``--network host``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: the tag the tests build (not the release repository: nothing here can be pushed by mistake)
TEST_REPOSITORY = "localhost/xmodal"
#: ``make base-image``'s tag
LOCAL_BASE = "localhost/xmodal-python:3.11-bookworm"
READY_TIMEOUT_S = 60.0
#: storage drivers tried in turn: overlay2 (a container starts in 0.4 s here), else vfs (which copies the whole
#: image for every container and every build step: 75 s and 3 GB a `docker run` of the project image, measured)
DRIVERS = ("overlay2", "vfs")
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Engine:
    """A running ``dockerd``: its socket (as ``DOCKER_HOST``) and log."""

    host: str
    log: Path
    data_root: Path

    def env(self) -> dict[str, str]:
        """The environment a ``docker`` CLI (classic builder) or the docker SDK needs to reach this engine."""
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "0"}

    def docker(self, *args: str, timeout: float = 600, check: bool = True,
               input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``docker <args>`` against this engine; on failure with ``check``, raise with its output."""
        done = subprocess.run(["docker", *args], env=self.env(), capture_output=True, text=True, timeout=timeout,
                              input=input, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} exited {done.returncode}:\n{done.stdout[-4000:]}\n"
                               f"{done.stderr[-4000:]}")
        return done


@dataclass(frozen=True)
class BuiltImage:
    """The project image the session built: its tag, the engine that holds it, and what the build took."""

    tag: str
    engine: Engine
    build_seconds: float


def _start(cmd: list[str], driver: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([*cmd, f"--storage-driver={driver}"], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


#: the part of the repository ``docker/Dockerfile``'s build context uses (``.dockerignore`` keeps out the rest)
CONTEXT = ("pyproject.toml", "README.md", "requirements", "src", "components", "pipelines", "docker", ".dockerignore")


def copy_context(target: Path) -> None:
    """Copy the build context into ``target`` (links kept as links: ``src/xmodal/components`` is one)."""
    for name in CONTEXT:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name, symlinks=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def rebuild_with_a_source_change(engine: Engine, tag: str, target: str, workdir: Path) -> None:
    """Build ``docker/Dockerfile`` as ``make image`` built ``tag`` (its base, version and torch source), from a copy of
    the context in ``workdir`` whose ``src/xmodal/__init__.py`` has a comment appended; tag the result ``target``."""
    copy_context(workdir)
    with (workdir / "src/xmodal/__init__.py").open("a") as fh:
        fh.write("\n# a change to the source only\n")
    config = json.loads(engine.docker("image", "inspect", tag).stdout)[0]["Config"]
    base = config["Labels"]["org.opencontainers.image.base.name"]
    repository, _, version = tag.rpartition(":")
    torch_arg = ["--build-arg", "TORCH_INDEX_URL="] if list(
        (workdir / "docker/build-extras/wheelhouse").glob("torch-*.whl")) else []
    engine.docker("build", "--network", "host", "-f", str(workdir / "docker/Dockerfile"),
                  "--build-arg", f"XMODAL_VERSION={version}", "--build-arg", f"BASE_IMAGE={base}",
                  "--build-arg", f"IMAGE_REPOSITORY={repository}", *torch_arg, "-t", target, str(workdir),
                  timeout=3600)


def layers_of(engine: Engine, tag: str) -> list[str]:
    """The digests of ``tag``'s filesystem layers, lowest first."""
    return json.loads(engine.docker("image", "inspect", tag).stdout)[0]["RootFS"]["Layers"]


def missing_tools() -> list[str]:
    """The programs a container test needs and this machine lacks."""
    return [tool for tool in ("dockerd", "docker", "debootstrap") if shutil.which(tool) is None]


@contextlib.contextmanager
def running_dockerd() -> Iterator[Engine]:
    """Start ``dockerd`` on a unix socket in a temporary folder; stop it (and remove the folder) afterwards."""
    if missing := missing_tools():
        raise RuntimeError(f"{', '.join(missing)} not found: `make container-tools` installs Debian's docker.io and "
                           "debootstrap (as root)")
    if os.geteuid() != 0:
        raise RuntimeError("dockerd runs as root here (rootless Docker is not set up by the project)")
    # a short path: a unix socket's path is limited to 107 bytes
    tmp = Path(tempfile.mkdtemp(prefix="xd-", dir="/tmp"))
    kept = os.environ.get("XMODAL_DOCKER_DATA_ROOT")
    data_root = Path(kept) if kept else tmp / "root"
    data_root.mkdir(parents=True, exist_ok=True)
    log = tmp / "dockerd.log"
    sock = tmp / "docker.sock"
    cmd = ["dockerd", "--iptables=false", "--ip6tables=false", "--bridge=none",
           "--data-root", str(data_root), "--exec-root", str(tmp / "exec"), "--pidfile", str(tmp / "dockerd.pid"),
           "-H", f"unix://{sock}"]
    drivers = [os.environ["XMODAL_DOCKER_STORAGE"]] if os.environ.get("XMODAL_DOCKER_STORAGE") else list(DRIVERS)
    engine = Engine(host=f"unix://{sock}", log=log, data_root=data_root)
    proc = _start(cmd, drivers.pop(0), log)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                if drivers:  # overlay2 refused (an overlay filesystem below, no kernel support): the next driver
                    proc = _start(cmd, drivers.pop(0), log)
                    continue
                raise RuntimeError(f"dockerd exited {proc.returncode} at start:\n{log.read_text()[-4000:]}")
            if sock.exists() and engine.docker("version", timeout=10, check=False).returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not answer within {READY_TIMEOUT_S:.0f} s:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
        yield engine
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # containerd-shims of containers still running would keep files busy: dockerd stops them on SIGTERM
        shutil.rmtree(tmp, ignore_errors=True)
