"""The census family's metadata vocabularies: normalisation, the reserved code, dropped fields, files."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from xmodal.errors import XmodalInputError
from xmodal.families.census._vocab import RESERVED, Vocabulary, build_vocabulary, normalize_value


def _chunks() -> list[pd.DataFrame]:
    return [
        pd.DataFrame({"cell_type": [" T cell", "B cell ", "T  cell", None], "sex": ["female", "male", "unknown", "male"],
                      "assay": ["10x 3' v3"] * 4}),
        pd.DataFrame({"cell_type": ["NK cell", float("nan"), "B cell", "T cell"], "sex": ["male", "", "female", "NaN"],
                      "assay": ["10x 3' v3"] * 4}),
    ]


def test_normalize_value_strips_and_maps_null_like() -> None:
    assert normalize_value("  T   cell ") == "T cell"
    for null in (None, float("nan"), pd.NA, "", " ", "NaN", "unknown", "Unknown", "n/a"):
        assert normalize_value(null) is None, null
    assert normalize_value(3) == "3"


def test_vocabulary_streams_chunks_and_reserves_code_zero(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        vocab = build_vocabulary(iter(_chunks()), ["cell_type", "sex", "assay"])
    # assay has one value: dropped with a warning (the seed's randint(1, 1) failed on it)
    assert vocab.fields == ["cell_type", "sex"]
    assert "'assay'" in caplog.text
    assert "dropped" in caplog.text
    spec = {s.field: s for s in vocab.specs}
    assert not spec["assay"].used
    assert spec["assay"].reason == "cardinality 1"
    assert spec["cell_type"].cardinality == 3
    assert spec["cell_type"].n_null == 2
    assert spec["cell_type"].n_cells == 8
    assert spec["sex"].null_fraction == pytest.approx(3 / 8)
    assert vocab.values["cell_type"] == ["B cell", "NK cell", "T cell"]
    # raw (un-normalised) values, nulls and values never seen all encode; the seed crashed on the last two
    frame = pd.DataFrame({"cell_type": [" B cell", None, "monocyte", "T cell"], "sex": ["male", "unknown", "female", None]})
    codes = vocab.encode(frame)
    assert codes.tolist() == [[1, 2], [RESERVED, RESERVED], [RESERVED, 1], [3, RESERVED]]
    assert vocab.value("cell_type", 3) == "T cell"
    assert vocab.value("cell_type", RESERVED) is None
    assert vocab.unseen_fraction(frame)["cell_type"] == pytest.approx(0.25)


def test_vocabulary_round_trips_through_json(tmp_path) -> None:
    vocab = build_vocabulary(_chunks(), ["cell_type", "sex"])
    back = Vocabulary.load(vocab.save(tmp_path / "vocab.json"))
    assert back == vocab
    frame = _chunks()[1]
    np.testing.assert_array_equal(back.encode(frame), vocab.encode(frame))


@pytest.mark.parametrize(("fields", "message"), [
    (["cell_type", "tissue"], "unknown field 'tissue'"),
    (["sex", "sex"], "listed twice"),
    (["assay"], "two or more values"),
])
def test_bad_fields_are_clear_errors(fields: list[str], message: str) -> None:
    with pytest.raises(XmodalInputError, match=message):
        build_vocabulary(_chunks(), fields)


def test_empty_source_is_a_clear_error() -> None:
    with pytest.raises(XmodalInputError, match="no cells"):
        build_vocabulary([], ["sex"])
    with pytest.raises(XmodalInputError, match="no cells"):
        build_vocabulary([pd.DataFrame({"sex": []})], ["sex"])


def test_encode_names_a_missing_column() -> None:
    vocab = build_vocabulary(_chunks(), ["cell_type", "sex"])
    with pytest.raises(XmodalInputError, match="no column 'sex'") as err:
        vocab.encode(pd.DataFrame({"cell_type": ["B cell"]}), where="chunk_003.csv")
    assert "chunk_003.csv" in str(err.value)
