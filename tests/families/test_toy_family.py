"""Adding a data family and a method from outside ``src/``: one registry entry each and a params section.

A toy family (labelled Gaussian blobs, one modality) and a toy method (nearest centroid) are registered from
this folder and run through the real stage functions: ingest → preprocess → train → evaluate → register →
report, and the drift monitor. Nothing under ``stages/``, ``tracking/``, ``cli.py``, ``components/`` or
``pipelines/`` knows them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xmodal.config import params_from_dict
from xmodal.errors import ConfigError
from xmodal.families import FAMILIES, FamilySpec
from xmodal.methods import METHODS
from xmodal.methods._registry import MethodSpec
from xmodal.stages import evaluate, ingest, monitor, preprocess, register, report, train

TOY = FamilySpec(name="toy", dataset_config="_toy:ToyDatasetConfig", preprocess_config="_toy:ToyPreprocessConfig",
                 family="_toy:ToyFamily", description="labelled Gaussian blobs")
CENTROID = MethodSpec(name="centroid", family="toy", config="_toy:CentroidConfig", model="_toy:Centroid",
                      primary_metric="accuracy", greater_is_better=True, summary_metrics=("accuracy", "macro_f1"))


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # noqa: ANN201
    monkeypatch.setitem(FAMILIES, "toy", TOY)
    monkeypatch.setitem(METHODS, "centroid", CENTROID)
    return params_from_dict({
        "datasets": {"blobs": {"family": "toy", "source": {"n_cells": 300, "seed": 1}},
                     "blobs_later": {"family": "toy", "source": {"n_cells": 200, "seed": 2, "shift": 1.5}}},
        "preprocess": {"toy": {"scale": True}},
        "methods": {"centroid": {"shrink": 0.0}},
        "runs": {"blobs-centroid": {"dataset": "blobs", "method": "centroid"}},
        "register": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
                     "gates": {"centroid": {"accuracy": {"min": 0.9}}}},
        "monitor": {"n_components": 5, "min_cells": 20},
    })


def test_a_toy_family_and_method_run_through_every_stage(toy, tmp_path: Path) -> None:  # noqa: ANN001
    root = tmp_path
    done = ingest.run(toy, dataset="blobs", root=root)
    assert done.schema["family"] == "toy"
    sizes = preprocess.run(toy, dataset="blobs", root=root).sizes
    assert sizes["test"]["x"] == pytest.approx(0.15 * 300, abs=3)  # the shared split: 15 % per class
    assert sizes["validation"]["x"] == pytest.approx(0.15 * 300, abs=3)
    schema = json.loads((root / "data/processed/blobs/schema.json").read_text())
    assert schema["settings"]["split"]["test_fraction"] == 0.15
    assert schema["settings"]["preprocess"] == {"scale": True}

    fitted = train.run(toy, dataset="blobs", method="centroid", root=root)
    assert fitted.info["n_train"] == sizes["train"]["x"]  # training cells only

    metrics = evaluate.run(toy, dataset="blobs", method="centroid", root=root).metrics
    assert set(metrics) == {"train", "validation", "test"}
    assert metrics["test"]["accuracy"] > 0.95  # planted, well separated blobs
    assert (root / "reports/blobs/centroid/plots/accuracy.png").stat().st_size > 1000

    decision = register.run(toy, dataset="blobs", method="centroid", root=root).decision
    assert decision["decision"] == "promoted", decision["reasons"]
    assert decision["challenger"]["metrics"]["accuracy"] == pytest.approx(metrics["test"]["accuracy"])

    summary = report.run(toy, root=root)
    (row,) = summary["runs"]
    assert (row["family"], row["method"], row["status"], row["primary_metric"]) == ("toy", "centroid", "evaluated",
                                                                                       "accuracy")
    assert row["metrics"] == metrics["test"]
    assert "toy" in report.format_table(summary)

    ingest.run(toy, dataset="blobs_later", root=root)  # the same blobs, shifted: drift
    drift = monitor.run(toy, dataset="blobs", new="data/ingested/blobs_later", root=root)
    assert drift.retrain
    same = monitor.run(toy, dataset="blobs", new="data/ingested/blobs", root=root)  # its own cells: no drift
    assert not same.retrain


def test_without_its_registry_entry_the_family_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="datasets.blobs.family: unknown data family 'toy'"):
        params_from_dict({"datasets": {"blobs": {"family": "toy"}}})
