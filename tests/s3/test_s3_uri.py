"""``s3://`` URIs in the dataset config and their parsing (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from xmodal._s3 import S3Object, is_s3_uri, parse_s3_uri
from xmodal.config._load import params_from_dict
from xmodal.errors import ConfigError, XmodalInputError
from xmodal.families.paired._config import AnnDataSource, CsvPairedSource


def test_config_keeps_s3_uris_verbatim_and_local_paths_as_paths() -> None:
    source = CsvPairedSource(modality_a="s3://lab/raw//2024/morpho.csv", modality_b="raw/gex.csv",
                             labels=Path("/data/labels.csv"))
    # a Path would have collapsed the "//" after the scheme and inside the key
    assert source.modality_a == "s3://lab/raw//2024/morpho.csv"
    assert source.modality_b == Path("raw/gex.csv")
    assert source.labels == Path("/data/labels.csv")
    assert source.model_dump(mode="json")["modality_a"] == "s3://lab/raw//2024/morpho.csv"
    h5 = AnnDataSource(path_a="s3://lab/a.h5ad", path_b="b.h5ad")
    assert (h5.path_a, h5.path_b) == ("s3://lab/a.h5ad", Path("b.h5ad"))


def test_a_path_field_of_the_wrong_type_names_its_key() -> None:
    raw = {"datasets": {"d": {"family": "paired", "source": {"kind": "csv", "modality_a": 5, "modality_b": "b.csv"}}}}
    with pytest.raises(ConfigError, match=r"datasets\.d\.source\.modality_a: .*file path or an s3:// URI"):
        params_from_dict(raw)


def test_parse_s3_uri() -> None:
    obj = parse_s3_uri("s3://lab-data/multiome/run 1/gex.csv")
    assert obj == S3Object(bucket="lab-data", key="multiome/run 1/gex.csv")
    assert (obj.uri, obj.name) == ("s3://lab-data/multiome/run 1/gex.csv", "gex.csv")
    assert is_s3_uri("s3://b/k")
    assert not is_s3_uri("S3:/b/k")
    assert not is_s3_uri(Path("s3:/b/k"))


@pytest.mark.parametrize("uri", ["s3://", "s3://bucket", "s3://bucket/", "s3://bucket/folder/", "s3:///key"])
def test_uri_that_names_no_object_is_an_input_error(uri: str) -> None:
    with pytest.raises(XmodalInputError, match="must name one object") as info:
        parse_s3_uri(uri, role="modality_a")
    assert info.value.path == uri
    assert "source.modality_a" in str(info.value)
    assert "s3://bucket/path/to/file" in info.value.fix
