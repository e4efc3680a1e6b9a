"""Shared fixtures and the opt-in marker table."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

OPT_IN = {"slow": "--slow"}


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
    "datasets": {
        "tiny": {"family": "paired", "source": {"kind": "synthetic", "n_cells": 150, "dim_a": 12, "dim_b": 40,
                                                "n_clusters": 3, "seed": 1}},
    },
    "preprocess": {"paired": {"n_pcs": 8}},
    # split seed 0 of these 150 cells (3 clusters) gives gwot a mirrored GW optimum (test FOSCTTM 0.54; 1 of
    # split seeds 0-4 does): the plumbing tests here want a working fit, the methods' own tests judge quality
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
