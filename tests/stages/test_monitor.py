"""``monitor``: a planted shift is flagged, a resample of the reference is not, bad input exits 2.

One small project (ingest + preprocess through the CLI) is shared by the module. The reference is the
training split; the "new" data sets are built from the held-out validation cells (same distribution,
never in the reference), shifted or damaged on purpose.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from xmodal.cli import main
from xmodal.config import load_params
from xmodal.families.paired._data import SPLIT, PairedData, read_paired, write_paired
from xmodal.stages.monitor import ModalityDrift, MonitorResult, decide_retrain, run

DATASET = "tiny"
PARAMS = {
    "seed": 0,
    "datasets": {DATASET: {"family": "paired", "source": {"kind": "synthetic", "n_cells": 400, "dim_a": 30,
                                                          "dim_b": 40, "n_clusters": 3, "seed": 1}}},
    "preprocess": {"paired": {"n_pcs": 8}},
    # the shipped defaults, spelled out: 20 components per modality, K-S at p <= 0.05, retrain at share 0.3
    "monitor": {"n_components": 20, "stattest": "ks", "stattest_threshold": 0.05, "retrain_share": 0.3},
}
SHIFTED_FEATURES = 15  # the first half of the 30 morphology features


def _cli(root: Path, *args: str) -> int:
    return main([*args, "--params", str(root / "params.yaml"), "--root", str(root)])


def _validation_cells(root: Path) -> PairedData:
    """The held-out cells in their ingested features (the reference is the training cells)."""
    raw, processed = read_paired(root / "data/ingested" / DATASET), read_paired(root / "data/processed" / DATASET)
    mods = {}
    for key in ("a", "b"):
        obs = processed.modality(key).obs
        mods[key] = raw.modality(key)[obs.index[obs[SPLIT] == "validation"]].copy()
    return replace(raw, a=mods["a"], b=mods["b"])


def _shift_block(data: PairedData, *, n_features: int, sds: float) -> PairedData:
    """Add ``sds`` standard deviations to the first ``n_features`` features of modality A."""
    a = data.a.copy()
    x = np.asarray(a.X, dtype=np.float64)
    x[:, :n_features] += sds * x[:, :n_features].std(axis=0)
    a.X = x.astype(np.float32)
    return replace(data, a=a)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("monitor")
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    for stage in ("ingest", "preprocess"):
        assert _cli(root, stage, "--dataset", DATASET) == 0
    val = _validation_cells(root)
    write_paired(val, root / "new/resample")
    write_paired(_shift_block(val, n_features=SHIFTED_FEATURES, sds=2.0), root / "new/shift")
    write_paired(replace(val, a=val.a[:, [f for f in val.a.var_names if f != "feat_3"]].copy()),
                 root / "new/missing_feature")
    write_paired(replace(val, a=val.a[:5].copy(), b=val.b[:5].copy()), root / "new/few_cells")
    return root


def _state(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden temp folders included) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()} \
        if folder.exists() else {}


def test_decide_retrain_at_and_below_the_share() -> None:
    assert decide_retrain({"rna": 0.3, "atac": 0.0}, retrain_share=0.3).retrain  # >= is enough
    below = decide_retrain({"rna": 0.29, "atac": 0.1}, retrain_share=0.3)
    assert not below.retrain
    assert below.reasons == ["rna: drifted share 0.290 < retrain_share 0.3",
                             "atac: drifted share 0.100 < retrain_share 0.3"]
    assert "atac: drifted share 1.000 >= retrain_share 0.3" in decide_retrain(
        {"rna": 0.0, "atac": 1.0}, retrain_share=0.3).reasons
    assert not decide_retrain({}, retrain_share=0.3).retrain


def test_planted_shift_is_flagged_in_the_shifted_modality_only(
        project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    gh = tmp_path / "github_output"
    gh.write_text("earlier=1\n")
    monkeypatch.setenv("GITHUB_OUTPUT", str(gh))
    assert _cli(project, "monitor", "--dataset", DATASET, "--new", "new/shift") == 0  # relative to --root
    out = capsys.readouterr().out
    assert gh.read_text() == "earlier=1\nretrain=true\n"  # appended for the CI retraining workflow
    assert "retrain: yes" in out

    output = project / "reports/monitor" / DATASET
    report = json.loads((output / "drift.json").read_text())
    morph, expr = report["modalities"]["morphology"], report["modalities"]["expression"]
    assert report["retrain"] is True
    assert morph["drifted_share"] >= 0.6  # measured 0.75–1.0 (data seeds 1–3)
    assert expr["drifted_share"] < report["retrain_share"]  # the other modality is untouched
    assert f"morphology: {morph['n_drifted']}/20 components drifted" in out
    assert all(morph["scores"][c] <= 0.05 for c in morph["drifted_columns"])  # K-S p-values at the threshold
    assert report["stattest"] == {"name": "ks", "display_name": "K-S p_value", "threshold": 0.05}
    assert morph["n_columns"] == 20
    assert morph["n_drifted"] == len(morph["drifted_columns"]) == round(morph["drifted_share"] * 20)
    assert set(morph["scores"]) == {f"pc_{i}" for i in range(1, 21)}
    # the reference is the training cells, split into the PCA fit and the tested sample; new: validation cells
    sizes = read_paired(project / "data/processed" / DATASET).a.obs[SPLIT].value_counts()
    assert morph["n_reference_total"] == sizes["train"] == pytest.approx(0.7 * 400, abs=3)
    assert morph["n_reference"] + morph["n_reference_fit"] == sizes["train"]
    assert morph["n_new"] == sizes["validation"]
    assert any(r.startswith("morphology: drifted share") and ">=" in r for r in report["reasons"])
    html = (output / "drift.html").read_text()
    assert "morphology:pc_1" in html  # one Evidently report, both modalities
    assert "expression:pc_1" in html
    assert not [p for p in output.parent.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_resample_of_the_reference_is_not_flagged(project: Path) -> None:
    params = load_params(project / "params.yaml")
    result = run(params, dataset=DATASET, new=project / "new/resample", root=project)
    shares = {name: m.drifted_share for name, m in result.modalities.items()}
    assert not result.retrain, shares
    assert max(shares.values()) <= 0.2  # measured 0.05–0.10 (data seeds 1–3)
    assert json.loads((result.output / "drift.json").read_text())["retrain"] is False
    n_val = int((read_paired(project / "data/processed" / DATASET).a.obs[SPLIT] == "validation").sum())
    assert all(m.n_columns == 20 and m.n_new == n_val for m in result.modalities.values())


def test_cli_prints_no_and_writes_retrain_false(tiny_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from xmodal.stages import monitor

    calls = []

    def fake_run(params: object, *, dataset: str, new: str, root: str) -> MonitorResult:
        calls.append((dataset, new, root))
        drift = ModalityDrift(name="rna", scores={"pc_1": 0.5, "pc_2": 0.01}, drifted=["pc_2"], n_reference=50,
                              n_new=40, n_reference_fit=50)
        return MonitorResult(output=Path(root) / "reports/monitor" / dataset, retrain=False, reasons=[],
                             modalities={"rna": drift}, summary={"retrain_share": 0.6})

    monkeypatch.setattr(monitor, "run", fake_run)
    gh = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(gh))
    assert _cli(tiny_project, "monitor", "--dataset", "tiny", "--new", "incoming") == 0
    assert calls == [("tiny", "incoming", str(tiny_project))]
    assert gh.read_text() == "retrain=false\n"
    out = capsys.readouterr().out
    assert "rna: 1/2 components drifted (share 0.50, retrain at >= 0.6)" in out
    assert "retrain: no" in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--new", "new/missing_feature"), ["'morphology'", "lacks 1 feature", "'feat_3'"]),
        (("--new", "new/few_cells"), ["has 5 cells", "monitor.min_cells = 20"]),
        (("--new", "new/nowhere"), ["new/nowhere", "no such data file"]),
    ],
)
def test_bad_new_data_exits_2_and_writes_nothing(project: Path, args: tuple[str, ...], expected: list[str],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    before = _state(project / "reports")
    assert _cli(project, "monitor", "--dataset", DATASET, *args) == 2
    err = capsys.readouterr().err
    for text in expected:
        assert text in err
    assert _state(project / "reports") == before


def test_missing_reference_says_run_dvc_repro(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["datasets"]["fresh"] = params["datasets"][DATASET]
    root = project / "other_root"
    root.mkdir(exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    assert _cli(root, "monitor", "--dataset", "fresh", "--new", str(project / "new/resample")) == 2
    err = capsys.readouterr().err
    assert "no reference data for dataset 'fresh'" in err
    assert "dvc repro" in err
    assert not (root / "reports").exists()
