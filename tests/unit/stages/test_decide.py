"""The promotion rule, on hand-written metrics (no MLflow)."""

from __future__ import annotations

import math

import pytest

from xmodal.config import GateBound
from xmodal.stages.register import decide

GATES = {"foscttm": GateBound(max=0.3), "label_transfer_accuracy": GateBound(min=0.6)}
GOOD = {"foscttm": 0.10, "label_transfer_accuracy": 0.90}


def _decide(challenger: dict[str, float], champion: dict[str, float] | None, **kw: object):
    opts = {"primary_metric": "foscttm", "greater_is_better": False, "gates": GATES, "min_improvement": 0.0}
    opts.update(kw)
    return decide(challenger, champion, **opts)


def test_first_model_passing_the_gates_is_promoted() -> None:
    verdict = _decide(GOOD, None)
    assert verdict.promote
    assert [g.passed for g in verdict.gates] == [True, True]
    assert verdict.improvement is None


def test_failing_one_gate_blocks_promotion_even_without_champion() -> None:
    verdict = _decide({"foscttm": 0.10, "label_transfer_accuracy": 0.55}, None)
    assert not verdict.promote
    assert any("label_transfer_accuracy" in r and "FAIL" in r for r in verdict.reasons)


def test_worse_than_champion_is_not_promoted_for_lower_is_better() -> None:
    verdict = _decide({"foscttm": 0.12, "label_transfer_accuracy": 0.95}, {"foscttm": 0.10})
    assert not verdict.promote
    assert verdict.improvement == pytest.approx(-0.02)


def test_better_than_champion_is_promoted_for_lower_is_better() -> None:
    verdict = _decide(GOOD, {"foscttm": 0.15})
    assert verdict.promote
    assert verdict.improvement == pytest.approx(0.05)


def test_direction_is_respected_for_greater_is_better() -> None:
    kw = {"primary_metric": "label_transfer_accuracy", "greater_is_better": True}
    assert _decide(GOOD, {"label_transfer_accuracy": 0.80}, **kw).promote
    assert not _decide(GOOD, {"label_transfer_accuracy": 0.95}, **kw).promote


def test_a_tie_is_not_an_improvement_and_min_improvement_is_strict() -> None:
    assert not _decide(GOOD, {"foscttm": 0.10}).promote
    assert not _decide(GOOD, {"foscttm": 0.11}, min_improvement=0.01 + 1e-12).promote
    assert _decide(GOOD, {"foscttm": 0.12}, min_improvement=0.01).promote


def test_missing_or_nan_metric_fails_its_gate() -> None:
    verdict = _decide({"foscttm": math.nan, "label_transfer_accuracy": 0.9}, None)
    assert not verdict.promote
    assert verdict.gates[0].value is None
    assert not _decide({"foscttm": 0.1}, None).promote


def test_gates_pass_but_worse_than_champion_says_why() -> None:
    verdict = _decide({"foscttm": 0.2, "label_transfer_accuracy": 0.9}, {"foscttm": 0.1})
    assert all(g.passed for g in verdict.gates)
    assert not verdict.promote
    assert "champion 0.1" in verdict.reasons[-1]
