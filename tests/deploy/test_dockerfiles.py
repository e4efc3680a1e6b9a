"""The project images (``docker/Dockerfile``, ``docker/Dockerfile.gpu``) without building them: hadolint with
its default rules, and the properties the cluster and the pipeline rely on (pinned bases, the lock as
constraints, CUDA torch in the GPU image, non-root, the ``xmodal`` entrypoint, OCI labels), plus the
``make images`` target that builds them. Building needs a Docker engine; CI with one runs ``make images``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _deploytools import REPO, package_version, require_tool

DOCKERFILES = {"cpu": REPO / "docker" / "Dockerfile", "gpu": REPO / "docker" / "Dockerfile.gpu"}
IMAGE_REPOSITORY = "ghcr.io/xmodal/xmodal"
BAD_DOCKERFILE = """\
FROM python:latest
RUN apt-get update && apt-get install -y curl
RUN pip install requests
"""


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined and comments dropped."""
    joined, out = "", []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            joined += line[:-1] + " "
            continue
        joined += line
        keyword, _, args = joined.partition(" ")
        out.append((keyword.upper(), args.strip()))
        joined = ""
    return out


def _text(path: Path) -> str:
    """Every instruction on one line each (continuations joined), comments dropped."""
    return "\n".join(f"{keyword} {args}" for keyword, args in _instructions(path))


def _stages(path: Path) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, args in _instructions(path):
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, args))
    return stages


def _hadolint(path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """hadolint with its default rules: run from an empty folder with no user config to pick up."""
    env = {**os.environ, "HOME": str(cwd), "XDG_CONFIG_HOME": str(cwd)}
    return subprocess.run([require_tool("hadolint"), "--no-color", str(path)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


# --------------------------------------------------------------------------------------------- hadolint
@pytest.mark.parametrize("flavour", sorted(DOCKERFILES))
def test_hadolint_passes_with_default_rules(flavour: str, tmp_path: Path) -> None:
    result = _hadolint(DOCKERFILES[flavour], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ignore" not in DOCKERFILES[flavour].read_text().lower(), "no rule may be switched off"


def test_hadolint_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(BAD_DOCKERFILE)
    result = _hadolint(bad, tmp_path)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3013", "DL3042"):  # :latest, apt and pip unpinned, pip cache
        assert rule in result.stdout, result.stdout


# ------------------------------------------------------------------------------------------- structure
def _global_args(path: Path) -> dict[str, str]:
    """The ``ARG name=default`` lines before the first ``FROM``."""
    out = {}
    for keyword, args in _instructions(path):
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = args.partition("=")
            out[name] = default
    return out


@pytest.mark.parametrize("flavour", sorted(DOCKERFILES))
def test_every_base_image_is_pinned(flavour: str) -> None:
    # a base may be a build argument (BASE_IMAGE: `make base-image` builds one without a registry), whose default
    # is the pinned image users pull
    aliases, defaults = set(), _global_args(DOCKERFILES[flavour])
    for stage in _stages(DOCKERFILES[flavour]):
        words = stage[0][1].split()
        image = words[0]
        if image not in aliases:
            arg = re.fullmatch(r"\$\{(\w+)\}", image)
            if arg:
                assert arg.group(1) in defaults, f"{image}: a global ARG with a default must name the base"
                image = defaults[arg.group(1)]
            tag = image.rpartition("/")[2].partition(":")[2]
            assert tag, f"{image} has no tag"
            assert tag != "latest", image
            assert "$" not in image, f"{image}: the default base must be written out"
        if len(words) == 3 and words[1].upper() == "AS":
            aliases.add(words[2])


def test_the_cpu_base_is_a_build_argument_defaulting_to_the_official_python() -> None:
    assert _global_args(DOCKERFILES["cpu"])["BASE_IMAGE"] == "python:3.11.14-slim-bookworm"
    assert all(stage[0][1].split()[0] == "${BASE_IMAGE}" for stage in _stages(DOCKERFILES["cpu"]))


@pytest.mark.parametrize("flavour", sorted(DOCKERFILES))
def test_wheel_stage_copies_the_folders_behind_the_package_links(flavour: str) -> None:
    # src/xmodal/components and src/xmodal/pipelines are symlinks: without their targets the wheel has no KFP code
    copies = [args for stage in _stages(DOCKERFILES[flavour]) for keyword, args in stage if keyword == "COPY"]
    for folder in ("src", "components", "pipelines"):
        assert any(args.split()[0] == folder for args in copies), f"{flavour}: no COPY {folder}"
    for link in ("components", "pipelines"):
        assert (REPO / "src" / "xmodal" / link).is_symlink()


@pytest.mark.parametrize("flavour", sorted(DOCKERFILES))
def test_runtime_stage_is_non_root_with_the_xmodal_entrypoint(flavour: str) -> None:
    runtime = _stages(DOCKERFILES[flavour])[-1]
    users = [args for keyword, args in runtime if keyword == "USER"]
    assert users, "the runtime stage sets no USER"
    assert users[-1].split(":")[0] not in {"root", "0"}, users[-1]
    final = dict(runtime)
    assert final["ENTRYPOINT"] == '["xmodal"]'
    assert final["CMD"] == '["--help"]'
    assert final["WORKDIR"].startswith("/")
    assert 'org.opencontainers.image.version="${XMODAL_VERSION}"' in final["LABEL"]
    assert any(a.startswith("XMODAL_VERSION") for k, a in runtime if k == "ARG")


@pytest.mark.parametrize("flavour", sorted(DOCKERFILES))
def test_dependencies_come_from_the_lock(flavour: str) -> None:
    instructions = _instructions(DOCKERFILES[flavour])
    copies = [args for keyword, args in instructions if keyword == "COPY"]
    assert "requirements/lock.txt /tmp/lock.txt" in copies
    installs = [args for keyword, args in instructions if keyword == "RUN" and "pip install" in args]
    # every install that asks an index is constrained by the lock (or the GPU image's lock without torch)
    for run in installs:
        for command in run.split("&&"):
            if "pip install" in command and "--no-index" not in command and '"pip>=25"' not in command:
                assert re.search(r"-c /tmp/(lock|constraints-gpu)\.txt", command), command
    assert any("-r /tmp/requirements.txt" in run or '[all]"' in run for run in installs), "no [all] install"
    text = _text(DOCKERFILES[flavour])
    # no pip cache in any layer
    for run in installs:
        assert "--no-cache-dir" in run or "PIP_NO_CACHE_DIR=1" in text, run


def test_the_cpu_image_installs_the_dependencies_before_the_project() -> None:
    """A change to src/ must leave the dependencies' layer cached: they are installed from pyproject.toml's
    requirements (docker/requirements_of.py), the project is copied in after them, last."""
    stages = _stages(DOCKERFILES["cpu"])
    deps = next(s for s in stages if s[0][1].endswith("AS deps"))
    assert not any(k == "COPY" and a.split()[0] == "src" for k, a in deps), "the deps stage copies src/"
    assert any("requirements_of.py /tmp/pyproject.toml all" in a for k, a in deps if k == "RUN")
    runtime = stages[-1]
    assert runtime[-2:] == [("COPY", "--from=deps /opt/venv /opt/venv"), ("COPY", "--from=wheel /opt/project/ /")]


def test_cpu_image_takes_torch_from_the_cpu_index_or_the_wheelhouse() -> None:
    text = _text(DOCKERFILES["cpu"])
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text
    assert '${TORCH_INDEX_URL:+--extra-index-url "${TORCH_INDEX_URL}"}' in text
    assert "PIP_FIND_LINKS=/build-extras/wheelhouse" in text
    assert "torch.version.cuda is None" in text
    assert "torch==2.13.0+cpu" in (REPO / "requirements" / "lock.txt").read_text().splitlines()


def test_gpu_image_is_cuda_python311_and_filters_the_cpu_torch_pin() -> None:
    stages = _stages(DOCKERFILES["gpu"])
    defaults = _global_args(DOCKERFILES["gpu"])
    bases = [re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], stage[0][1].split()[0]) for stage in stages]
    assert re.fullmatch(r"nvidia/cuda:\d+\.\d+\.\d+-cudnn-runtime-ubuntu22\.04", bases[-1]), bases
    text = _text(DOCKERFILES["gpu"])
    # the lock's torch==2.13.0+cpu is filtered out of the constraints and torch is installed as a CUDA
    # build at the lock's version
    assert "grep -v -E '^torch==' /tmp/lock.txt > /tmp/constraints-gpu.txt" in text
    assert "--extra-index-url \"${TORCH_INDEX_URL}\"" in text
    assert re.search(r"ARG TORCH_INDEX_URL=https://download\.pytorch\.org/whl/cu\d+", text)
    assert "assert torch.version.cuda" in text
    assert "-c /tmp/lock.txt" not in text
    assert "--python 3.11." in text
    cuda = re.search(r"nvidia/cuda:(\d+)\.(\d+)", bases[-1])
    index = re.search(r"whl/cu(\d+)", text)
    assert index.group(1) == cuda.group(1) + cuda.group(2), "the torch CUDA index matches the base image"


def test_dockerignore_keeps_outputs_and_state_out_of_the_context() -> None:
    entries = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for needed in (".git", ".venv", "data/ingested", "data/processed", "models", "reports", "mlflow.db",
                   "mlartifacts", "dvc-storage", ".dvc/cache", "**/__pycache__", ".pytest_cache"):
        assert needed in entries, needed
    # what the Dockerfiles COPY must stay in the context
    for kept in ("src", "pyproject.toml", "README.md", "requirements", "requirements/lock.txt"):
        assert kept not in entries, kept


# ------------------------------------------------------------------------------------------ make images
def _make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not on PATH")
    return subprocess.run([make, "--no-print-directory", "-C", str(REPO), *args], capture_output=True,
                          text=True, timeout=60, check=False, env=env)


def test_make_images_builds_both_tags_from_the_package_version() -> None:
    version = package_version()
    result = _make("-n", "images", "DOCKER=docker")
    assert result.returncode == 0, result.stderr
    builds = [line for line in result.stdout.splitlines() if line.startswith("docker build ")]
    assert len(builds) == 2, result.stdout
    cpu, gpu = builds
    assert "-f docker/Dockerfile " in cpu
    assert cpu.endswith(f"-t {IMAGE_REPOSITORY}:{version} .")
    assert "-f docker/Dockerfile.gpu " in gpu
    assert gpu.endswith(f"-t {IMAGE_REPOSITORY}:{version}-gpu .")
    for line in builds:
        assert f"--build-arg XMODAL_VERSION={version}" in line


def test_make_images_says_docker_is_needed_when_it_is_missing() -> None:
    result = _make("images", "DOCKER=xmodal-no-such-docker")
    assert result.returncode != 0
    assert "Docker is needed" in result.stderr
    assert "not on PATH" in result.stderr


def test_hadolint_passes_on_the_local_base(tmp_path: Path) -> None:
    done = _hadolint(REPO / "docker" / "Dockerfile.base", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_deps_stage_reads_every_requirement_of_the_all_extras() -> None:
    done = subprocess.run([sys.executable, str(REPO / "docker" / "requirements_of.py"), str(REPO / "pyproject.toml"),
                           "all"], capture_output=True, text=True, check=True)
    lines = done.stdout.split()
    for wanted in ("torch==2.13.0", "kfp==2.17.0", "tiledbsoma==2.3.0", "boto3>=1.40"):
        assert wanted in lines
    assert not any(line.startswith(("xmodal", "pytest", "ruff")) for line in lines)


def _named_stages(path: Path) -> dict[str, list[str]]:
    """Stage name → its instructions as text, the lock's GPU filtering written as the lock."""
    out = {}
    for stage in _stages(path):
        name = stage[0][1].split()[-1]
        out[name] = [f"{k} {a}".replace("/tmp/constraints-gpu.txt", "/tmp/lock.txt") for k, a in stage[1:]]
    return out


#: what may differ between the CPU and the GPU image: the base, the Python install (uv), the torch build, the
#: NVIDIA environment, the labels naming the CUDA image and the image's own name (XMODAL_IMAGE)
GPU_ONLY = ("CUDA", "cuda", "uv", "python -m venv", "torch", "NVIDIA", "/opt/python", "xmodal-gpu", "BASE_IMAGE", "XMODAL_IMAGE=")


def test_the_gpu_image_differs_from_the_cpu_image_only_where_it_must() -> None:
    cpu, gpu = _named_stages(DOCKERFILES["cpu"]), _named_stages(DOCKERFILES["gpu"])
    assert gpu["wheel"] == cpu["wheel"], "the wheel stage is shared: it must be the same"
    assert _global_args(DOCKERFILES["gpu"])["BASE_IMAGE"] == _global_args(DOCKERFILES["cpu"])["BASE_IMAGE"]
    for name in ("deps", "runtime"):
        only_gpu = [i for i in gpu[name] if i not in cpu[name]]
        only_cpu = [i for i in cpu[name] if i not in gpu[name]]
        unexplained = [i for i in only_gpu + only_cpu if not any(word in i for word in GPU_ONLY)]
        assert unexplained == [], f"{name}: differs beyond the base, Python, torch and NVIDIA settings"
    # the order of the runtime's last layers is the CPU image's, with the CUDA image's Python before the venv
    assert gpu["runtime"][-3:] == ["COPY --from=deps /opt/python /opt/python", *cpu["runtime"][-2:]]
