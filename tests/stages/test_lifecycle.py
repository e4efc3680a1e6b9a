"""Each stage on tiny data through the CLI, and bad input → exit 2 with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from xmodal.cli import main


def _cli(root: Path, *args: str) -> int:
    return main([*args, "--params", str(root / "params.yaml"), "--root", str(root)])


def test_stages_run_in_order_and_write_their_outputs(tiny_project: Path) -> None:
    root = tiny_project
    assert _cli(root, "ingest", "--dataset", "tiny") == 0
    schema = json.loads((root / "data/ingested/tiny/schema.json").read_text())
    assert schema["modalities"]["a"]["n_obs"] == 150
    assert schema["n_pairs"] == 150
    assert len(schema["modalities"]["a"]["sha256"]) == 64

    assert _cli(root, "preprocess", "--dataset", "tiny") == 0
    from xmodal.families.paired._data import read_paired

    data = read_paired(root / "data/processed/tiny")
    assert data.a.n_vars == 8
    assert data.b.n_vars == 8
    # partners always share a split, so held-out pairs are unseen in training
    ia, ib = data.true_pairs()
    assert (data.a.obs["split"].to_numpy()[ia] == data.b.obs["split"].to_numpy()[ib]).all()
    sizes = data.a.obs["split"].value_counts()
    for split in ("validation", "test"):  # 15 % of each of the 3 labels (rounded per label)
        assert abs(int(sizes[split]) - 0.15 * 150) <= 3, sizes

    assert _cli(root, "train", "--dataset", "tiny", "--method", "gwot") == 0
    assert (root / "models/tiny/gwot/model.json").is_file()
    assert _cli(root, "evaluate", "--dataset", "tiny", "--method", "gwot") == 0
    metrics = json.loads((root / "reports/tiny/gwot/metrics.json").read_text())
    assert set(metrics) == {"train", "validation", "test"}
    assert 0.0 <= metrics["test"]["foscttm"] < 0.5  # better than random
    assert metrics["test"]["n_pairs"] == int(sizes["test"])
    assert (root / "reports/tiny/gwot/plots/embedding.png").stat().st_size > 1000

    assert _cli(root, "report") == 0
    summary = json.loads((root / "reports/summary.json").read_text())
    assert summary["split"] == "test"
    assert summary["runs"][0]["metrics"]["foscttm"] == metrics["test"]["foscttm"]


def test_training_is_deterministic_and_round_trips(tiny_project: Path) -> None:
    root = tiny_project
    for stage in ("ingest", "preprocess"):
        assert _cli(root, stage, "--dataset", "tiny") == 0
    from xmodal.families.paired._data import read_paired
    from xmodal.methods import load_model

    outs, files = [], []
    for _ in range(2):
        assert _cli(root, "train", "--dataset", "tiny", "--method", "gwot") == 0
        model_path = root / "models/tiny/gwot"
        # byte-identical model folders keep dvc.lock stable across re-runs
        files.append({p.name: p.read_bytes() for p in sorted(model_path.iterdir())})
        model = load_model(model_path)
        val = read_paired(root / "data/processed/tiny").split("validation")
        outs.append(model.transform(np.asarray(val.b.X), modality="b"))
    np.testing.assert_array_equal(outs[0], outs[1])
    assert files[0] == files[1]


def test_bad_csv_exits_2_and_writes_nothing(tiny_project: Path, capsys) -> None:
    root = tiny_project
    (root / "morph.csv").write_text("id,f1,f2\nc1,1,2\nc2,nan,3\n")
    (root / "gex.csv").write_text("c1,1,2,3\nc2,4,5,6\n")
    params = (root / "params.yaml").read_text().replace(
        "datasets:\n", "datasets:\n  bad:\n    family: paired\n    source:\n      kind: csv\n"
        "      modality_a: morph.csv\n      modality_b: gex.csv\n", 1)
    (root / "params.yaml").write_text(params)
    assert _cli(root, "ingest", "--dataset", "bad") == 2
    err = capsys.readouterr().err
    assert "morph.csv" in err
    assert "row 3" in err
    assert "Fix:" in err
    ingested = root / "data" / "ingested"
    # nothing written: neither the output folder nor a leftover temporary folder
    assert not ingested.exists() or not any(ingested.iterdir())


def test_mistyped_param_exits_2_naming_the_key(tiny_project: Path, capsys) -> None:
    assert _cli(tiny_project, "train", "--dataset", "tiny", "--method", "gwot",
                "--set", "methods.gwot.epsilon=abc") == 2
    assert "methods.gwot.epsilon: expected float" in capsys.readouterr().err
