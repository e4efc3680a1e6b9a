"""Tests of xmodal.metrics.alignment: hand-computed examples, an oracle and the error cases."""

from __future__ import annotations

import numpy as np
import pytest

import xmodal.metrics as metrics_pkg
from xmodal.metrics import alignment, foscttm, foscttm_per_cell, knn_label_transfer
from xmodal.metrics import matching_accuracy as matching


def _col(values: list[float]) -> np.ndarray:
    """Points on a line as an (n, 1) embedding."""
    return np.asarray(values, dtype=float)[:, None]


def _brute_counts(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unchunked O(n^2) oracle, written from the definition with broadcasting: strictly closer rows, plus half of
    the other rows exactly as close."""
    d = np.sqrt(((x[:, None, :] - y[None, :, :]) ** 2).sum(axis=-1))  # d[i, j] = d(x_i, y_j)
    diag = np.diag(d)
    count_x = (d < diag[:, None]).sum(axis=1) + 0.5 * ((d == diag[:, None]).sum(axis=1) - 1)
    count_y = (d < diag[None, :]).sum(axis=0) + 0.5 * ((d == diag[None, :]).sum(axis=0) - 1)
    return count_x, count_y


# x = 0, 1, 3 and y = 0, 3, 1: cells 1 and 2 have their partners swapped.
LINE_X = _col([0, 1, 3])
LINE_Y = _col([0, 3, 1])
# x -> y:
#   i=0: x=0, partner y=0, d=0; nothing is < 0                         -> 0 -> 0/3
#   i=1: x=1, partner y=3, d=2; y0=0 (d=1) and y2=1 (d=0) are closer   -> 2 -> 2/3
#   i=2: x=3, partner y=1, d=2; y1=3 (d=0) closer, y0=0 (d=3) not      -> 1 -> 1/3
# y -> x:
#   i=0: y=0, partner x=0, d=0                                          -> 0 -> 0/3
#   i=1: y=3, partner x=1, d=2; x2=3 (d=0) closer, x0=0 (d=3) not      -> 1 -> 1/3
#   i=2: y=1, partner x=3, d=2; x0=0 (d=1) and x1=1 (d=0) closer       -> 2 -> 2/3
# mean of the six values = (0 + 2 + 1 + 0 + 1 + 2) / 3 / 6 = 6 / 18 = 1/3
LINE_COUNTS = np.array([0, 2, 1, 0, 1, 2])


# ------------------------------------------------------------------------------------------
# FOSCTTM
# ------------------------------------------------------------------------------------------


def test_package_reexports_public_functions() -> None:
    from xmodal.metrics import classification, counterfactual

    assert set(metrics_pkg.__all__) == {
        "CLASSES",
        "TRIVIAL",
        "change_scores",
        "classification_metrics",
        "confusion_matrix",
        "constant_baseline",
        "foscttm",
        "foscttm_per_cell",
        "knn_label_transfer",
        "label_transfer_confusion",
        "matching_accuracy",
        "neighborhood_matching",
        "r2",
        "top_changed",
        "trivial_scores",
    }
    for name in metrics_pkg.__all__:
        module = (classification if name in ("classification_metrics", "confusion_matrix", "constant_baseline",
                                             "trivial_scores", "CLASSES", "TRIVIAL")
                  else counterfactual if name in ("change_scores", "r2", "top_changed") else alignment)
        assert getattr(metrics_pkg, name) is getattr(module, name)


def test_foscttm_hand_example_on_a_line() -> None:
    fx, fy = foscttm_per_cell(LINE_X, LINE_Y)
    np.testing.assert_allclose(fx, [0, 2 / 3, 1 / 3])
    np.testing.assert_allclose(fy, [0, 1 / 3, 2 / 3])
    value = foscttm(LINE_X, LINE_Y)
    assert isinstance(value, float)
    assert value == pytest.approx(1 / 3)


def test_foscttm_reversed_line() -> None:
    # x = 0,1,2,3 and y = 3,2,1,0, so y_i = 3 - i and d(x_i, y_i) = |2i - 3|.
    # x -> y, rows of y strictly within |2i-3| of i, and rows exactly at it (y holds the points {0,1,2,3}):
    #   i=0: d=3 -> {0,1,2} = 3;  i=1: d=1 -> {1} = 1, and {0} tied;  i=2: d=1 -> {2} = 1, and {3} tied;
    #   i=3: d=3 -> {1,2,3} = 3
    # y -> x is the same by symmetry of the construction: 3, 1.5, 1.5, 3.
    # mean = (3+1.5+1.5+3) * 2 / 4 / 8 = 18 / 32
    x = _col([0, 1, 2, 3])
    y = _col([3, 2, 1, 0])
    fx, fy = foscttm_per_cell(x, y)
    np.testing.assert_allclose(fx, [3 / 4, 1.5 / 4, 1.5 / 4, 3 / 4])
    np.testing.assert_allclose(fy, [3 / 4, 1.5 / 4, 1.5 / 4, 3 / 4])
    assert foscttm(x, y) == pytest.approx(18 / 32)


def test_foscttm_perfect_alignment_is_zero() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4))
    fx, fy = foscttm_per_cell(x, x.copy())
    assert not fx.any()
    assert not fy.any()
    assert foscttm(x, x.copy()) == 0.0


def test_foscttm_ties_count_half() -> None:
    # x = 0, 10 and y = 1, -1.
    # x -> y: i=0: d(0, 1) = 1 and d(0, -1) = 1 is a tie: half             -> 0.5 -> 1/4
    #         i=1: d(10, -1) = 11, d(10, 1) = 9 < 11                        -> 1   -> 1/2
    # y -> x: i=0: d(1, 0) = 1, d(1, 10) = 9                                -> 0
    #         i=1: d(-1, 10) = 11, d(-1, 0) = 1 < 11                        -> 1   -> 1/2
    # mean = (1/4 + 1/2 + 0 + 1/2) / 4 = 5/16   (GLUE's strict rule: 1/4; a "<=" rule: 3/8)
    x = _col([0, 10])
    y = _col([1, -1])
    fx, fy = foscttm_per_cell(x, y)
    np.testing.assert_allclose(fx, [0.25, 0.5])
    np.testing.assert_allclose(fy, [0, 0.5])
    assert foscttm(x, y) == pytest.approx(5 / 16)


def test_foscttm_of_a_collapsed_embedding_is_chance_not_perfect() -> None:
    # every cell at one point: each has n - 1 ties, half counted -> (n - 1) / 2 / n, about 0.5 (random). GLUE's
    # strict rule gave 0, a perfect score that passed every gate (issue 28: a gate must be able to fail)
    for n in (5, 200):
        x = np.zeros((n, 3))
        assert foscttm(x, x) == pytest.approx((n - 1) / (2 * n))
        assert matching(x, x, ks=(1, 5)) == pytest.approx({"matching_top1": 1 / n, "matching_top5": min(5 / n, 1)})
    # identical test cells seen by any model: the same
    rng = np.random.default_rng(0)
    x = np.repeat(rng.normal(size=(1, 4)), 50, axis=0)
    assert foscttm(x, x + 1.0) == pytest.approx(49 / 100)


@pytest.mark.parametrize(
    ("perm", "n_fixed"),
    [
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 0], 0),  # cyclic shift
        ([0, 1, 2, 3, 4, 5, 6, 7, 9, 8], 8),  # one transposition
        ([2, 0, 1, 3, 4, 5, 6, 7, 8, 9], 7),  # one 3-cycle
    ],
)
def test_foscttm_known_permutation_of_orthonormal_points(perm: list[int], n_fixed: int) -> None:
    # x_i = e_i (unit basis vectors): every pair of distinct points is sqrt(2) apart.
    # y = x[perm]. For a cell with perm[i] != i, d(x_i, y_i) = sqrt(2) and exactly one row of y
    # (the one equal to e_i) is at distance 0 < sqrt(2); every other row is at sqrt(2), a tie.
    # So moved cells score 1/n, fixed cells 0, in both directions:
    # foscttm = (n - n_fixed) / n * (1 / n).
    n = len(perm)
    x = np.eye(n)
    y = x[perm]
    fx, fy = foscttm_per_cell(x, y)
    # (and n - 2 rows tie at sqrt(2), each counted half: a moved cell scores (1 + (n - 2) / 2) / n = 1/2)
    moved = np.asarray(perm) != np.arange(n)
    np.testing.assert_allclose(fx, moved / 2)
    np.testing.assert_allclose(fy, moved / 2)
    assert foscttm(x, y) == pytest.approx((n - n_fixed) / n / 2)


def test_foscttm_matches_bruteforce_oracle_and_chunking_does_not_matter() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(57, 3))
    y = x + rng.normal(scale=0.8, size=x.shape)
    count_x, count_y = _brute_counts(x, y)
    for chunk_size in (1, 7, 56, 57, 10_000):
        fx, fy = foscttm_per_cell(x, y, chunk_size=chunk_size)
        np.testing.assert_array_equal(fx, count_x / 57)
        np.testing.assert_array_equal(fy, count_y / 57)
    assert foscttm(x, y, chunk_size=1) == foscttm(x, y, chunk_size=10_000)
    # The example is not degenerate: something is neither perfect nor random.
    assert 0.0 < foscttm(x, y) < 0.4


def test_foscttm_distances_are_computed_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, int]] = []
    real_cdist = alignment.cdist

    def spy(a: np.ndarray, b: np.ndarray, *args: object, **kwargs: object) -> np.ndarray:
        out = real_cdist(a, b, *args, **kwargs)
        seen.append(out.shape)
        return out

    monkeypatch.setattr(alignment, "cdist", spy)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(23, 2))
    y = rng.normal(size=(23, 2))
    foscttm(x, y, chunk_size=5)
    # 23 rows in blocks of 5 -> 5, 5, 5, 5, 3 per direction; never a full 23 x 23 matrix.
    assert seen == [(5, 23)] * 4 + [(3, 23)] + [(5, 23)] * 4 + [(3, 23)]


def test_foscttm_is_symmetric() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 5))
    y = x + rng.normal(scale=1.0, size=x.shape)
    fx, fy = foscttm_per_cell(x, y)
    gx, gy = foscttm_per_cell(y, x)
    np.testing.assert_array_equal(fx, gy)
    np.testing.assert_array_equal(fy, gx)
    assert foscttm(x, y) == foscttm(y, x)
    # Symmetry is not trivial here: the two directions differ cell by cell.
    assert not np.array_equal(fx, fy)


def test_foscttm_random_embeddings_are_about_one_half() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, 10))
    y = rng.normal(size=(400, 10))
    assert abs(foscttm(x, y) - 0.5) < 0.05


def test_foscttm_accepts_lists() -> None:
    assert foscttm([[0.0], [1.0], [3.0]], [[0.0], [3.0], [1.0]]) == pytest.approx(1 / 3)


# ------------------------------------------------------------------------------------------
# matching accuracy
# ------------------------------------------------------------------------------------------


def test_matching_accuracy_hand_example() -> None:
    # Strict counts from the line example above, both directions: 0, 2, 1, 0, 1, 2.
    # top1: count < 1 -> 2 of 6 = 1/3
    # top2: count < 2 -> 4 of 6 = 2/3
    # top3: count < 3 -> 6 of 6 = 1
    out = matching(LINE_X, LINE_Y, ks=(1, 2, 3))
    assert list(out) == ["matching_top1", "matching_top2", "matching_top3"]
    assert out["matching_top1"] == pytest.approx(1 / 3)
    assert out["matching_top2"] == pytest.approx(2 / 3)
    assert out["matching_top3"] == pytest.approx(1.0)
    assert all(isinstance(v, float) for v in out.values())


def test_matching_accuracy_default_keys_and_perfect_alignment() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(30, 3))
    assert matching(x, x.copy()) == {"matching_top1": 1.0, "matching_top5": 1.0}


def test_matching_accuracy_breaks_ties_at_random() -> None:
    # Tie example from above: x -> y cell 0 has its partner tied with one other row (a hit half the time), cell 1
    # one row strictly closer (a miss); y -> x cell 0 a hit, cell 1 a miss.
    # top1 = (0.5 + 0 + 1 + 0) / 4; favouring the true partner gave 0.5, a "<=" rule 0.25.
    out = matching(_col([0, 10]), _col([1, -1]), ks=(1,))
    assert out == {"matching_top1": 0.375}


def test_matching_accuracy_reversed_line() -> None:
    # Counts for the reversed line (see test_foscttm_reversed_line): 3, 1 (+1 tied), 1 (+1 tied), 3 per direction.
    # top1 = 0/8; top2 = (0 + 1/2 + 1/2 + 0) * 2 / 8 (one closer, then a coin flip for the second place);
    # top5 = 8/8 (k > n - 1 is always a hit)
    out = matching(_col([0, 1, 2, 3]), _col([3, 2, 1, 0]), ks=(1, 2, 5))
    assert out == {"matching_top1": 0.0, "matching_top2": 0.25, "matching_top5": 1.0}


def test_matching_accuracy_matches_oracle_and_chunking() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(61, 4))
    y = x + rng.normal(scale=0.7, size=x.shape)
    count_x, count_y = _brute_counts(x, y)
    counts = np.concatenate([count_x, count_y])  # no ties in continuous data: whole numbers
    assert np.array_equal(counts, np.round(counts))
    expected = {f"matching_top{k}": float((counts < k).mean()) for k in (1, 3, 10)}
    assert matching(x, y, ks=(1, 3, 10), chunk_size=1) == expected
    assert matching(x, y, ks=(1, 3, 10), chunk_size=4096) == expected
    # Not degenerate: top1 is neither 0 nor 1 and grows with k.
    assert 0.0 < expected["matching_top1"] < expected["matching_top10"] < 1.0


# ------------------------------------------------------------------------------------------
# kNN label transfer
# ------------------------------------------------------------------------------------------

# Reference on a line:  0:a  1:a  2:b  10:b  11:b  20:c
KNN_REF = _col([0, 1, 2, 10, 11, 20])
KNN_REF_LABELS = ["a", "a", "b", "b", "b", "c"]
# Query (true label):   0.2:a  1.9:b  10.4:b  19:c  0.7:a  1.6:a
KNN_QUERY = _col([0.2, 1.9, 10.4, 19.0, 0.7, 1.6])
KNN_QUERY_LABELS = ["a", "b", "b", "c", "a", "a"]


def test_knn_label_transfer_k1_hand_example() -> None:
    # k=1, nearest reference point of each query:
    #   0.2 -> 0 (a) ok | 1.9 -> 2 (b) ok | 10.4 -> 10 (b) ok | 19 -> 20 (c) ok
    #   0.7 -> 1 (a) ok | 1.6 -> 2 (b, d=0.4 < 0.6 to point 1) WRONG
    # predictions a b b c a b; accuracy = 5/6
    # a: TP=2 FP=0 FN=1 -> P=1   R=2/3 F1 = 2*(2/3)/(5/3) = 4/5
    # b: TP=2 FP=1 FN=0 -> P=2/3 R=1   F1 = 4/5
    # c: TP=1 FP=0 FN=0 -> F1 = 1
    # macro F1 = (4/5 + 4/5 + 1) / 3 = 13/15; balanced accuracy = (2/3 + 1 + 1) / 3 = 8/9
    out = knn_label_transfer(KNN_REF, KNN_REF_LABELS, KNN_QUERY, KNN_QUERY_LABELS, k=1)
    assert set(out) == {
        "label_transfer_accuracy",
        "label_transfer_macro_f1",
        "label_transfer_balanced_accuracy",
    }
    assert out["label_transfer_accuracy"] == pytest.approx(5 / 6)
    assert out["label_transfer_macro_f1"] == pytest.approx(13 / 15)
    assert out["label_transfer_balanced_accuracy"] == pytest.approx(8 / 9)
    assert all(isinstance(v, float) for v in out.values())


def test_label_transfer_confusion_k1_hand_example() -> None:
    # same predictions as above: a b b c a b for truths a b b c a a
    categories, matrix = alignment.label_transfer_confusion(KNN_REF, KNN_REF_LABELS, KNN_QUERY, KNN_QUERY_LABELS,
                                                            k=1)
    assert categories == ["a", "b", "c"]
    assert matrix == [[2, 1, 0],   # true a: 2 predicted a, 1 predicted b
                      [0, 2, 0],
                      [0, 0, 1]]


def test_knn_label_transfer_k3_hand_example() -> None:
    # k=3, the three nearest reference points and the majority vote:
    #   0.2  -> 0, 1, 2     = a a b -> a  (true a) ok
    #   1.9  -> 2, 1, 0     = b a a -> a  (true b) WRONG
    #   10.4 -> 10, 11, 2   = b b b -> b  (true b) ok
    #   19   -> 20, 11, 10  = c b b -> b  (true c) WRONG
    #   0.7  -> 1, 0, 2     = a a b -> a  (true a) ok
    #   1.6  -> 2, 1, 0     = b a a -> a  (true a) ok
    # predictions a a b b a a; accuracy = 4/6 = 2/3
    # a: TP=3 FP=1 FN=0 -> P=3/4 R=1   F1 = 2*(3/4)/(7/4) = 6/7
    # b: TP=1 FP=1 FN=1 -> P=1/2 R=1/2 F1 = 1/2
    # c: TP=0 FP=0 FN=1 -> F1 = 0 (never predicted, zero_division=0)
    # macro F1 = (6/7 + 1/2 + 0) / 3 = 19/42; balanced accuracy = (1 + 1/2 + 0) / 3 = 1/2
    out = knn_label_transfer(KNN_REF, KNN_REF_LABELS, KNN_QUERY, KNN_QUERY_LABELS, k=3)
    assert out["label_transfer_accuracy"] == pytest.approx(2 / 3)
    assert out["label_transfer_macro_f1"] == pytest.approx(19 / 42)
    assert out["label_transfer_balanced_accuracy"] == pytest.approx(1 / 2)


def test_knn_label_transfer_string_and_integer_labels_agree() -> None:
    to_int = {"a": 0, "b": 1, "c": 2}
    as_str = knn_label_transfer(
        KNN_REF, np.array(KNN_REF_LABELS), KNN_QUERY, np.array(KNN_QUERY_LABELS), k=3
    )
    as_int = knn_label_transfer(
        KNN_REF,
        [to_int[s] for s in KNN_REF_LABELS],
        KNN_QUERY,
        [to_int[s] for s in KNN_QUERY_LABELS],
        k=3,
    )
    assert as_int == pytest.approx(as_str)
    assert as_str["label_transfer_accuracy"] == pytest.approx(2 / 3)


def test_knn_label_transfer_macro_f1_ignores_reference_only_classes() -> None:
    # ref: 0:a  5:d ; query 0.1 (a), 4.9 (a); k=1 predicts a, d.
    # accuracy = 1/2. Classes averaged = those in query_labels = {a}:
    # a: TP=1 FP=0 FN=1 -> P=1 R=1/2 F1=2/3. macro F1 = 2/3 (averaging over the union {a, d}
    # would give (2/3 + 0)/2 = 1/3). balanced accuracy = recall(a) = 1/2.
    out = knn_label_transfer(_col([0, 5]), ["a", "d"], _col([0.1, 4.9]), ["a", "a"], k=1)
    assert out["label_transfer_accuracy"] == pytest.approx(0.5)
    assert out["label_transfer_macro_f1"] == pytest.approx(2 / 3)
    assert out["label_transfer_balanced_accuracy"] == pytest.approx(0.5)


def test_knn_label_transfer_k_is_clipped_to_reference_size() -> None:
    # ref: 0:a 1:b 2:b; query 0.1 (a). k=1 -> a (accuracy 1). k=10 is clipped to 3 ->
    # votes a b b -> b (accuracy 0); without clipping scikit-learn would raise.
    ref, ref_labels = _col([0, 1, 2]), ["a", "b", "b"]
    query, query_labels = _col([0.1]), ["a"]
    assert knn_label_transfer(ref, ref_labels, query, query_labels, k=1)[
        "label_transfer_accuracy"
    ] == pytest.approx(1.0)
    assert knn_label_transfer(ref, ref_labels, query, query_labels, k=10)[
        "label_transfer_accuracy"
    ] == pytest.approx(0.0)


# ------------------------------------------------------------------------------------------
# input validation
# ------------------------------------------------------------------------------------------

GOOD = np.zeros((3, 2))


@pytest.mark.parametrize("func", [foscttm, foscttm_per_cell, matching])
@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (np.zeros((3, 2)), np.zeros((4, 2)), "3 rows and y has 4"),
        (np.zeros((3, 2)), np.zeros((3, 3)), "2 dimensions and y has 3"),
        (np.zeros((0, 2)), np.zeros((0, 2)), "empty"),
        (np.zeros((3, 0)), np.zeros((3, 0)), "empty"),
        (np.array([[0.0, np.nan], [1, 1], [2, 2]]), GOOD, "x contains 1 NaN or infinite"),
        (GOOD, np.array([[0.0, np.inf], [1, 1], [2, -np.inf]]), "y contains 2 NaN or infinite"),
        (np.zeros(3), np.zeros(3), "2-D"),
        (np.array([["a", "b"]] * 3), GOOD, "numeric"),
    ],
)
def test_paired_metrics_reject_bad_inputs(
    func: object, x: np.ndarray, y: np.ndarray, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        func(x, y)  # type: ignore[operator]


@pytest.mark.parametrize("func", [foscttm, foscttm_per_cell, matching])
@pytest.mark.parametrize("chunk_size", [0, -3, 2.5])
def test_paired_metrics_reject_bad_chunk_size(func: object, chunk_size: object) -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        func(GOOD, GOOD, chunk_size=chunk_size)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("ks", "match"),
    [((0,), "must be >= 1"), ((1, -2), "must be >= 1"), ((), "ks is empty"), (5, "sequence")],
)
def test_matching_accuracy_rejects_bad_ks(ks: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        matching(GOOD, GOOD, ks=ks)  # type: ignore[arg-type]


@pytest.mark.parametrize("k", [0, -1])
def test_knn_label_transfer_rejects_k_below_one(k: int) -> None:
    with pytest.raises(ValueError, match="k must be >= 1"):
        knn_label_transfer(KNN_REF, KNN_REF_LABELS, KNN_QUERY, KNN_QUERY_LABELS, k=k)


@pytest.mark.parametrize(
    ("ref", "ref_labels", "query", "query_labels", "match"),
    [
        (np.zeros((3, 2)), ["a"] * 3, np.zeros((2, 3)), ["a"] * 2, "2 dimensions and query has 3"),
        (np.zeros((0, 2)), [], np.zeros((2, 2)), ["a"] * 2, "ref is empty"),
        (np.zeros((3, 2)), ["a"] * 3, np.zeros((0, 2)), [], "query is empty"),
        (np.zeros((3, 2)), ["a"] * 2, np.zeros((2, 2)), ["a"] * 2, "ref_labels has 2 entries"),
        (np.zeros((3, 2)), ["a"] * 3, np.zeros((2, 2)), ["a"] * 3, "query_labels has 3 entries"),
        (np.zeros((3, 2)), [["a"]] * 3, np.zeros((2, 2)), ["a"] * 2, "ref_labels must be 1-D"),
        (
            np.array([[0.0, 0.0], [np.nan, 1.0], [2.0, 2.0]]),
            ["a"] * 3,
            np.zeros((2, 2)),
            ["a"] * 2,
            "ref contains 1 NaN",
        ),
        (np.zeros((3, 2)), ["a"] * 3, np.full((2, 2), np.inf), ["a"] * 2, "query contains 4"),
    ],
)
def test_knn_label_transfer_rejects_bad_inputs(
    ref: np.ndarray,
    ref_labels: list[str],
    query: np.ndarray,
    query_labels: list[str],
    match: str,
) -> None:
    with pytest.raises(ValueError, match=match):
        knn_label_transfer(ref, ref_labels, query, query_labels, k=1)


# ------------------------------------------------------------------------------------------
# the SciPy/NumPy implementation agrees with scikit-learn (kept as the oracle in tests only)


def test_knn_label_transfer_vote_tie_goes_to_the_label_that_sorts_first() -> None:
    # k=2: the query at 0.5 sees one "b" (0) and one "a" (1) -> tie -> "a"
    pred = knn_label_transfer(_col([0.0, 1.0]), ["b", "a"], _col([0.5]), ["b"], k=2, return_predictions=True)
    assert list(pred) == ["a"]


@pytest.mark.parametrize("k", [1, 4, 15])
def test_knn_label_transfer_matches_scikit_learn(k: int) -> None:
    from sklearn.metrics import f1_score, recall_score
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(k)
    ref, query = rng.normal(size=(300, 6)), rng.normal(size=(120, 6))
    ref_y = rng.choice(list("pqrstu"), size=300)
    query_y = rng.choice(list("pqrs"), size=120)  # two reference-only classes
    expected = KNeighborsClassifier(n_neighbors=k).fit(ref, ref_y).predict(query)
    pred = knn_label_transfer(ref, ref_y, query, query_y, k=k, return_predictions=True)
    np.testing.assert_array_equal(pred, expected)
    out = knn_label_transfer(ref, ref_y, query, query_y, k=k)
    classes = np.unique(query_y)
    assert out["label_transfer_accuracy"] == pytest.approx(np.mean(expected == query_y))
    assert out["label_transfer_macro_f1"] == pytest.approx(
        f1_score(query_y, expected, labels=classes, average="macro", zero_division=0))
    assert out["label_transfer_balanced_accuracy"] == pytest.approx(
        recall_score(query_y, expected, labels=classes, average="macro", zero_division=0))


def test_label_transfer_confusion_matches_scikit_learn() -> None:
    from sklearn.metrics import confusion_matrix

    rng = np.random.default_rng(0)
    ref, query = rng.normal(size=(200, 4)), rng.normal(size=(80, 4))
    ref_y, query_y = rng.choice(list("abcd"), size=200), rng.choice(list("abc"), size=80)
    categories, matrix = alignment.label_transfer_confusion(ref, ref_y, query, query_y, k=5)
    pred = knn_label_transfer(ref, ref_y, query, query_y, k=5, return_predictions=True)
    assert matrix == confusion_matrix(query_y, pred, labels=categories).tolist()
    assert sum(map(sum, matrix)) == 80


# ------------------------------------------------------------------------------------------
# seed 000's kNN matching accuracy
# ------------------------------------------------------------------------------------------


def test_neighborhood_matching_equals_brute_force_l1() -> None:
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    y = x + 0.3 * rng.normal(size=x.shape)
    got = metrics_pkg.neighborhood_matching(x, y, ks=(1, 5, 50))
    nearest = cdist(y, x, "cityblock").argmin(axis=1)
    order = np.argsort(cdist(x, x, "cityblock"), axis=1, kind="stable")
    for k in (1, 5, 50):
        expected = np.mean([nearest[i] in order[i, :k] for i in range(len(x))])
        assert got[f"neighborhood_matching_k{k}"] == pytest.approx(expected)
    assert got["neighborhood_matching_k1"] < got["neighborhood_matching_k5"] < 1.0
    # a perfect alignment finds every partner; a scrambled one mostly does not
    assert metrics_pkg.neighborhood_matching(x, x, ks=(1,))["neighborhood_matching_k1"] == 1.0
    assert metrics_pkg.neighborhood_matching(x, y[rng.permutation(60)], ks=(5,))["neighborhood_matching_k5"] < 0.3
