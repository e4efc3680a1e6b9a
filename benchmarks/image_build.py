"""The CPU image built from nothing in a fresh ``dockerd``, then rebuilt after one source file changes: wall times,
image size and how many layers the rebuild reused, as JSON.

Needs root, Debian's ``docker.io`` and ``debootstrap`` (``make container-tools``) and about 15 GB of disk. The engine
is the container tests' (``tests/containers/_engine.py``: overlay2 where the kernel allows it, else vfs), with an
empty data root, so nothing is cached but pip's downloads are made again. The base is ``make base-image``'s Debian
+ Python 3.11 unless ``--base`` names one the engine can pull. The rebuild is the same ``docker build`` from a copy
of the build context with ``src/xmodal/__init__.py`` changed (a comment appended): the dependencies' layers must
be reused, only the project's layer rebuilt.

    python benchmarks/image_build.py                  # → benchmarks/results/image_build.json

``--quick`` (what ``make test`` runs) builds nothing: it assembles the rebuild's context copy, dry-runs the make
targets (``make -n``) and records whether this machine could run the full benchmark (root, dockerd, debootstrap).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "containers"))
from _engine import (  # noqa: E402
    LOCAL_BASE,
    TEST_REPOSITORY,
    copy_context,
    layers_of,
    missing_tools,
    rebuild_with_a_source_change,
    running_dockerd,
)


def _make(env: dict[str, str], *args: str) -> float:
    start = time.monotonic()
    subprocess.run(["make", "--no-print-directory", *args], cwd=REPO, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def _quick(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        copy_context(Path(tmp))
        copied = sorted(p.name for p in Path(tmp).iterdir())
    dry = subprocess.run(["make", "-n", "--no-print-directory", "base-image", "wheelhouse", "image",
                          f"BASE_IMAGE={LOCAL_BASE}"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "docker/Dockerfile" in dry, dry
    result = {"benchmark": "image_build", "quick": True, "context": copied,
              "could_run_here": not missing_tools() and __import__("os").geteuid() == 0,
              "missing_tools": missing_tools()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="", help="a base image the engine can pull (default: make base-image's)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "image_build.json")
    parser.add_argument("--quick", action="store_true", help="build nothing: check the context and the make targets")
    args = parser.parse_args()
    if args.quick:
        _quick(args.out)
        return
    version = subprocess.run([sys.executable, "-c", "import xmodal; print(xmodal.__version__)"], check=True,
                             capture_output=True, text=True, cwd=REPO / "src").stdout.strip()
    tag = f"{TEST_REPOSITORY}:{version}"
    result: dict[str, object] = {"benchmark": "image_build", "quick": False, "machine": platform.machine(),
                                 "cpus": len(__import__("os").sched_getaffinity(0))}
    with running_dockerd() as engine:
        env = engine.env()
        result["storage_driver"] = engine.docker("info", "--format", "{{.Driver}}").stdout.strip()
        base = args.base
        if not base:
            result["base_image_seconds"] = round(_make(env, "base-image", f"LOCAL_BASE_IMAGE={LOCAL_BASE}"), 1)
            base = LOCAL_BASE
        result["base"] = base
        result["wheelhouse_seconds"] = round(_make(env, "wheelhouse"), 1)
        result["build_seconds"] = round(_make(env, "image", f"BASE_IMAGE={base}",
                                              f"IMAGE_REPOSITORY={TEST_REPOSITORY}"), 1)
        inspect = json.loads(engine.docker("image", "inspect", tag).stdout)[0]
        result["image_bytes"] = inspect["Size"]
        result["image_gb"] = round(inspect["Size"] / 1e9, 2)
        layers = inspect["RootFS"]["Layers"]
        sizes = engine.docker("history", "--format", "{{.Size}}\t{{.CreatedBy}}", tag).stdout.splitlines()
        result["top_layers"] = sizes[:4]
        with tempfile.TemporaryDirectory() as tmp:
            start = time.monotonic()
            rebuild_with_a_source_change(engine, tag, f"{tag}-rebuilt", Path(tmp))
            result["rebuild_seconds"] = round(time.monotonic() - start, 1)
        rebuilt = layers_of(engine, f"{tag}-rebuilt")
        result["layers"] = len(layers)
        result["layers_reused_by_rebuild"] = sum(a == b for a, b in zip(layers, rebuilt, strict=False))
        result["rebuild_over_build"] = round(result["rebuild_seconds"] / result["build_seconds"], 4)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
