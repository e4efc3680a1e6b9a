"""The project image, built for real and run in a real ``dockerd`` (``_engine.py``), for the tests in this folder.

Opt-in (``--containers``; ``make test-containers`` and ``.ci/run`` pass it): they need root, Debian's
``docker.io`` and ``debootstrap`` (``make container-tools``), several GB of disk and minutes of build. The image is
built once per session with the project's own ``make`` targets, as a user builds it: the base is
``XMODAL_TEST_BASE_IMAGE`` if set (e.g. the official ``python:3.11.14-slim-bookworm`` where a registry answers),
else ``make base-image``'s Debian + Python 3.11 made without a registry; torch comes from ``make wheelhouse``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _engine import LOCAL_BASE, REPO, TEST_REPOSITORY, BuiltImage, Engine, running_dockerd  # noqa: E402


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.containers)


def _make(engine: Engine, *targets: str, **variables: str) -> None:
    cmd = ["make", "--no-print-directory", *targets, *(f"{k}={v}" for k, v in variables.items())]
    done = subprocess.run(cmd, cwd=REPO, env=engine.env(), capture_output=True, text=True, timeout=3600,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-6000:]}\n{done.stderr[-6000:]}")


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """A real ``dockerd`` for the session, stopped at the end."""
    with running_dockerd() as running:
        yield running


@pytest.fixture(scope="session")
def image(engine: Engine) -> BuiltImage:
    """The CPU image built from ``docker/Dockerfile`` with ``make image`` (and its base, when there is no registry)."""
    base = os.environ.get("XMODAL_TEST_BASE_IMAGE", "")
    start = time.monotonic()
    if not base:
        _make(engine, "base-image", LOCAL_BASE_IMAGE=LOCAL_BASE)
        base = LOCAL_BASE
    _make(engine, "wheelhouse", "image", BASE_IMAGE=base, IMAGE_REPOSITORY=TEST_REPOSITORY)
    version = subprocess.run([sys.executable, "-c", "import xmodal; print(xmodal.__version__)"],
                             capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONPATH": str(REPO / "src")}).stdout.strip()
    return BuiltImage(tag=f"{TEST_REPOSITORY}:{version}", engine=engine,
                      build_seconds=time.monotonic() - start)
