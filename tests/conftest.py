"""Shared fixtures and the opt-in marker table.

Every test runs with one BLAS/OpenMP/torch thread, and so does every process a test starts (the variables are
inherited): the machines are shared, and two threads beside one other busy process were measured 5× slower,
enough to push a 75 s test past the 600 s timeout.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import yaml  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> None:
    """torch reads OMP_NUM_THREADS when it starts; set it too in case it was imported before this file."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _threads_put_back() -> Iterator[None]:
    """A test that leaves torch on more threads changes the float sums of every later fit in this process
    (measured: a module-scoped cycleae fixture trained after scanpy's numba kernels had set 2 threads differed
    from the same fit on 1 thread in 78 of 800 weights, by 3e-8): put it back and fail the test that did it."""
    yield
    import torch

    threads = torch.get_num_threads()
    if threads != 1:
        torch.set_num_threads(1)
        pytest.fail(f"the test left torch on {threads} threads (wrap the call that changed it in "
                    "xmodal._threads.torch_threads_kept)")


OPT_IN = {"slow": "--slow", "containers": "--containers"}


def pytest_addoption(parser: pytest.Parser) -> None:
    for marker, flag in OPT_IN.items():
        parser.addoption(flag, action="store_true", default=False, help=f"run tests marked {marker}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for marker, flag in OPT_IN.items():
        if config.getoption(flag):
            continue
        skip = pytest.mark.skip(reason=f"needs {flag}")
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)


TINY_PARAMS = {
    "seed": 0,
    "threads": 1,
    "datasets": {
        "tiny": {"family": "paired", "source": {"kind": "synthetic", "n_cells": 150, "dim_a": 12, "dim_b": 40,
                                                "n_clusters": 3, "seed": 1}},
    },
    "preprocess": {"paired": {"n_pcs": 8}},
    # on these 150 cells (3 clusters, 104 training cells) the GW objective itself cannot tell two clusters
    # apart: a coupling that swaps them has a lower GW distance than the true pairing in both geometries
    # (measured), so some split seeds give a swapped fit (with the fast settings below, test FOSCTTM
    # 0.36 / 0.28 / 0.40 / 0.70 / 0.31 for split seeds 0-4). The plumbing tests here want a working fit;
    # the methods' own tests and benchmarks/gwot_diagnosis.py judge quality on data with enough cells
    "split": {"seed": 1},
    "methods": {"gwot": {"max_iter": 30, "anneal_steps": 1, "epsilon": 0.01}},
    "evaluate": {"embedding_plot": "pca"},
    # the training's live MLflow run is tested where it is the subject (it costs a store per trained project)
    "register": {"live_training": False},
    "runs": {"tiny-gwot": {"dataset": "tiny", "method": "gwot"}},
}


@pytest.fixture
def tiny_project(tmp_path: Path) -> Path:
    """A project root with a tiny params.yaml (synthetic data, fast gwot)."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(TINY_PARAMS))
    return tmp_path
