"""No promotion on a gate that cannot fail: test cells of one class pass every classification gate with a trivial
1.0, so such a gate asks the challenger to beat what a constant prediction scores on the same cells (which no
model can on one class), and ``decision.json`` says why. Through the real CLI for the paired family (label
transfer) and the multiome family (dualdann's phases), and on :func:`decide` for the general rule.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _cli import tiny_params, write_params, xmodal

from _files import small_multiome, write_10x, write_paired_csv
from xmodal.config import GateBound
from xmodal.stages.register import decide

ONE_CLASS = "they hold one class"
DUALDANN = {"shared_dim": 32, "peak_hidden": 16, "peak_intermediate": 32, "cls_hidden": 16, "disc_hidden": 16,
            "source_pcs": 10, "batch_size": 32, "epochs": 4, "eval_every": 2}


def _paired(root: Path, labels: list[str], *, gate: float = 0.6) -> None:
    """A paired CSV dataset ``mine`` (two noisy views of one latent signal) with ``labels``, gated on label transfer."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(len(labels), 3))
    a = z @ rng.normal(size=(3, 6)) + 0.1 * rng.normal(size=(len(labels), 6))
    b = z @ rng.normal(size=(3, 8)) + 0.1 * rng.normal(size=(len(labels), 8))
    params = tiny_params()
    params["datasets"]["mine"] = {"family": "paired", "source": write_paired_csv(root / "raw", a, b, labels=labels)}
    params["register"] = {"live_training": False, "gates": {"gwot": {"label_transfer_accuracy": {"min": gate}}}}
    write_params(root, params)


def _run(root: Path, dataset: str, method: str) -> dict:
    """ingest → preprocess → train → evaluate → register; the decision."""
    for stage in ("ingest", "preprocess"):
        got = xmodal(root, stage, "--dataset", dataset)
        assert got.rc == 0, got.stderr[-2000:]
    for stage in ("train", "evaluate", "register"):
        got = xmodal(root, stage, "--dataset", dataset, "--method", method)
        assert got.rc == 0, got.stderr[-2000:]
    return json.loads((root / f"reports/registry/{dataset}/{method}/decision.json").read_text())


def _champion(root: Path, name: str) -> str | None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    aliases = MlflowClient(tracking_uri=uri, registry_uri=uri).get_registered_model(name).aliases
    return None if "champion" not in aliases else str(aliases["champion"])


def _test_labels(root: Path, dataset: str) -> pd.Series:
    from xmodal.families.paired._data import read_paired

    obs = read_paired(root / f"data/processed/{dataset}").a.obs
    return obs.loc[obs["split"].astype(str) == "test", "label"].astype(str)


def _assert_not_promoted_for_one_class(decision: dict, metric: str) -> None:
    assert decision["decision"] == "rejected", decision["reasons"]
    gate = next(g for g in decision["gates"] if g["metric"] == metric)
    assert gate["passed"] is False
    assert gate["informative"] is False
    assert gate["classes"] == 1
    assert gate["trivial"] == 1.0
    assert any(metric in r and ONE_CLASS in r for r in decision["reasons"]), decision["reasons"]
    assert decision["champion_after"] is None


def test_paired_cells_all_of_one_label_promote_nothing(tmp_path: Path) -> None:
    _paired(tmp_path, ["t"] * 60)
    decision = _run(tmp_path, "mine", "gwot")
    assert decision["challenger"]["metrics"]["label_transfer_accuracy"] == 1.0  # what passed the gate before
    _assert_not_promoted_for_one_class(decision, "label_transfer_accuracy")
    assert _champion(tmp_path, "xmodal-gwot-mine") is None


def test_a_rare_label_kept_out_of_the_test_split_leaves_one_class_there(tmp_path: Path) -> None:
    """Two labels, but the rare one is too small to reach the stratified test split: the test cells hold one."""
    _paired(tmp_path, ["t"] * 57 + ["u"] * 3)
    decision = _run(tmp_path, "mine", "gwot")
    assert set(_test_labels(tmp_path, "mine")) == {"t"}  # the degenerate split the issue describes
    _assert_not_promoted_for_one_class(decision, "label_transfer_accuracy")


def test_multiome_cells_of_one_phase_promote_no_dualdann(tmp_path: Path) -> None:
    data = small_multiome(seed=3, n_cells=90)
    path = write_10x(tmp_path / "m.h5", data)
    pd.DataFrame({"cell": list(map(str, data.rna.obs_names)), "phase": ["G1"] * data.rna.n_obs}).to_csv(
        tmp_path / "l.csv", index=False)
    params = tiny_params()
    params["datasets"]["mo"] = {"family": "multiome", "source": {"kind": "files", "domains": [
        {"name": "line_a", "format": "10x_h5", "path": str(path), "labels": str(tmp_path / "l.csv")}]}}
    params["methods"]["dualdann"] = DUALDANN
    params["register"] = {"live_training": False, "gates": {"dualdann": {"target_atac_macro_f1": {"min": 0.5}}}}
    write_params(tmp_path, params)
    decision = _run(tmp_path, "mo", "dualdann")
    _assert_not_promoted_for_one_class(decision, "target_atac_macro_f1")


def test_the_gate_of_labelled_cells_of_several_classes_records_their_trivial_baseline(tmp_path: Path) -> None:
    labels = ["t"] * 30 + ["u"] * 20 + ["v"] * 10
    _paired(tmp_path, labels, gate=0.0)  # a bound a constant prediction passes: the model must beat it instead
    decision = _run(tmp_path, "mine", "gwot")
    test = _test_labels(tmp_path, "mine")
    gate = decision["gates"][0]
    assert gate["classes"] == test.nunique() == 3
    assert gate["trivial"] == pytest.approx(test.value_counts(normalize=True).max())  # always the commonest
    assert gate["informative"] is False
    assert gate["passed"] == (gate["value"] > gate["trivial"])
    assert (decision["decision"] == "promoted") == gate["passed"]
    assert not any(k.startswith(("trivial/", "classes/")) for k in decision["challenger"]["metrics"])


# ------------------------------------------------------------------ the rule itself


def test_the_constant_baseline_is_the_best_a_constant_prediction_scores() -> None:
    from xmodal.metrics import constant_baseline, trivial_scores

    nine_to_one = constant_baseline(["t"] * 9 + ["u"])
    assert nine_to_one["accuracy"] == pytest.approx(0.9)
    assert nine_to_one["balanced_accuracy"] == pytest.approx(0.5)
    assert nine_to_one["macro_f1"] == pytest.approx((2 * 0.9 / 1.9) / 2)  # F1 of 't' (precision .9, recall 1), 'u' 0
    assert nine_to_one["cohen_kappa"] == pytest.approx(0.0)
    assert nine_to_one["f1_u"] == pytest.approx(2 * 0.1 / 1.1)  # always 'u': precision .1, recall 1
    one = constant_baseline(["G1"] * 5, classes=["G1", "S", "G2M"])
    assert one == {"accuracy": 1.0, "balanced_accuracy": 1.0, "macro_f1": 1.0, "cohen_kappa": 1.0, "f1_G1": 1.0}
    assert trivial_scores({"x_accuracy": 0.7, "x_n": 5.0}, ["a", "b"], prefix="x_") == {
        "trivial/x_accuracy": 0.5, "classes/x_accuracy": 2.0}


OPTS = {"primary_metric": "acc", "greater_is_better": True, "gates": {"acc": GateBound(min=0.6)}}


@pytest.mark.parametrize(("value", "trivial", "classes", "promote", "says"), [
    (1.0, 1.0, 1, False, ONE_CLASS),  # one class: nothing beats the constant prediction
    (0.85, 0.9, 2, False, "scores 0.9, which passes the bound too"),  # below always-the-majority
    (0.95, 0.9, 2, True, "the model must beat that"),  # above it: the gate was judged against it
    (0.7, 0.4, 3, True, None),  # the bound asks more than a constant prediction: as before
    (0.5, 0.4, 3, False, None),
])
def test_decide_judges_a_gate_a_constant_prediction_passes_against_that_prediction(
        value: float, trivial: float, classes: int, promote: bool, says: str | None) -> None:
    metrics = {"acc": value, "trivial/acc": trivial, "classes/acc": float(classes)}
    verdict = decide(metrics, None, **OPTS)
    assert verdict.promote is promote
    assert verdict.gates[0].informative is (trivial < 0.6)
    assert verdict.gates[0].trivial == trivial
    if says is None:
        assert "constant prediction" not in verdict.reasons[0]
    else:
        assert says in verdict.reasons[0]


def test_decide_without_a_baseline_is_unchanged() -> None:
    verdict = decide({"acc": 0.7}, None, **OPTS)
    assert verdict.promote
    assert verdict.gates[0].trivial is None
    assert verdict.gates[0].informative
