"""Classification metrics against scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from xmodal.metrics import classification_metrics, confusion_matrix

CLASSES = ("G1", "S", "G2M")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.choice(CLASSES, size=200, p=[0.6, 0.3, 0.1])
    pred = np.where(rng.random(200) < 0.6, truth, rng.choice(CLASSES, size=200))
    out = classification_metrics(truth, pred, classes=CLASSES, prefix="t_")
    assert out["t_accuracy"] == pytest.approx(skm.accuracy_score(truth, pred))
    assert out["t_balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(truth, pred))
    assert out["t_macro_f1"] == pytest.approx(skm.f1_score(truth, pred, average="macro"))
    assert out["t_cohen_kappa"] == pytest.approx(skm.cohen_kappa_score(truth, pred))
    per_class = skm.f1_score(truth, pred, labels=list(CLASSES), average=None)
    for c, f1 in zip(CLASSES, per_class, strict=True):
        assert out[f"t_f1_{c}"] == pytest.approx(f1)
    np.testing.assert_array_equal(confusion_matrix(truth, pred, classes=CLASSES),
                                  skm.confusion_matrix(truth, pred, labels=list(CLASSES)))


def test_absent_class_and_errors() -> None:
    out = classification_metrics(["G1", "G1", "S"], ["G1", "S", "S"], classes=CLASSES)
    assert "f1_G2M" not in out  # not in truth: not averaged, not reported
    assert out["macro_f1"] == pytest.approx(skm.f1_score(["G1", "G1", "S"], ["G1", "S", "S"], average="macro"))
    assert np.isnan(classification_metrics([], [], classes=CLASSES)["accuracy"])
    with pytest.raises(ValueError, match="not among the classes"):
        confusion_matrix(["G1"], ["M"], classes=CLASSES)
    with pytest.raises(ValueError, match="differ in length"):
        confusion_matrix(["G1"], ["G1", "S"], classes=CLASSES)
