"""Bad ``s3://`` input: one message naming the URI and a fix, exit code 2, nothing written."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import pytest
import yaml

from xmodal.cli import main


def csv_params(root: Path, *, modality_a: str, modality_b: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    source = {"kind": "csv", "modality_a": modality_a, "modality_b": modality_b}
    (root / "params.yaml").write_text(yaml.safe_dump({"datasets": {"seed": {"family": "paired", "source": source}}}))
    return root


def ingest(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["ingest", "--dataset", "seed", "--params", str(root / "params.yaml"), "--root", str(root)])
    return code, capsys.readouterr().err


@pytest.fixture
def uploaded(s3_env, bucket: str, prefix: str, tmp_path: Path) -> dict[str, str]:
    """A valid two-file CSV pair in the bucket: name → URI."""
    raw = tmp_path / "upload"
    raw.mkdir()
    (raw / "morpho.csv").write_text("cell_id,depth,length\nc1,0.5,1.5\nc2,0.7,2.5\nc3,0.1,0.2\n")
    (raw / "gex.csv").write_text("c1,3,0,1\nc2,1,4,0\nc3,0,2,2\n")
    return s3_env.upload(raw, bucket, f"{prefix}/raw")


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def assert_nothing_left(root: Path, scratch: Path) -> None:
    assert not (root / "data").exists()
    assert not list(scratch.iterdir())


def test_valid_pair_ingests(uploaded: dict[str, str], tmp_path: Path, capsys) -> None:
    # the control case of the tests below: the same files and keys do work
    root = csv_params(tmp_path / "ok", modality_a=uploaded["morpho.csv"], modality_b=uploaded["gex.csv"])
    code, err = ingest(root, capsys)
    assert (code, err) == (0, "")
    assert (root / "data/ingested/seed/schema.json").is_file()


def test_missing_object_exits_2_naming_the_uri(uploaded: dict[str, str], tmp_path: Path, scratch: Path,
                                               capsys) -> None:
    missing = uploaded["gex.csv"].replace("gex.csv", "gex_v2.csv")
    root = csv_params(tmp_path / "p", modality_a=uploaded["morpho.csv"], modality_b=missing)
    code, err = ingest(root, capsys)
    assert code == 2
    assert missing in err
    assert "source.modality_b" in err
    assert "no such object" in err
    assert "Fix:" in err
    assert f"aws s3 ls {missing}" in err
    assert err.count("\n") == 1
    assert_nothing_left(root, scratch)


def test_missing_bucket_exits_2_naming_the_bucket(s3_env, tmp_path: Path, scratch: Path, capsys) -> None:
    uri = "s3://no-such-bucket-xmodal/raw/morpho.csv"
    root = csv_params(tmp_path / "p", modality_a=uri, modality_b=uri)
    code, err = ingest(root, capsys)
    assert code == 2
    assert uri in err
    assert "bucket 'no-such-bucket-xmodal' does not exist" in err
    assert "Fix:" in err
    assert_nothing_left(root, scratch)


@pytest.mark.parametrize(("variable", "code_word"), [("AWS_SECRET_ACCESS_KEY", "SignatureDoesNotMatch"),
                                                     ("AWS_ACCESS_KEY_ID", "InvalidAccessKeyId")])
def test_wrong_credentials_exit_2_with_a_credentials_fix(uploaded: dict[str, str], tmp_path: Path, scratch: Path,
                                                        monkeypatch: pytest.MonkeyPatch, capsys,
                                                        variable: str, code_word: str) -> None:
    monkeypatch.setenv(variable, "not-the-right-one")
    root = csv_params(tmp_path / "p", modality_a=uploaded["morpho.csv"], modality_b=uploaded["gex.csv"])
    code, err = ingest(root, capsys)
    assert code == 2
    assert uploaded["morpho.csv"] in err
    assert "rejected the credentials" in err
    assert code_word in err
    assert "Fix: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY" in err
    assert_nothing_left(root, scratch)


def test_no_credentials_exit_2(uploaded: dict[str, str], tmp_path: Path, scratch: Path,
                               monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    root = csv_params(tmp_path / "p", modality_a=uploaded["morpho.csv"], modality_b=uploaded["gex.csv"])
    code, err = ingest(root, capsys)
    assert code == 2
    assert "no S3 credentials found" in err
    assert "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in err
    assert_nothing_left(root, scratch)


def test_unreachable_endpoint_exits_2(s3_env, tmp_path: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # no retries with back-off: the test stays fast
    uri = "s3://any-bucket/raw/morpho.csv"
    root = csv_params(tmp_path / "p", modality_a=uri, modality_b=uri)
    code, err = ingest(root, capsys)
    assert code == 2
    assert uri in err
    assert f"cannot reach the S3 endpoint http://127.0.0.1:{port}" in err
    assert "Fix: check AWS_ENDPOINT_URL" in err
    assert_nothing_left(root, scratch)


def test_invalid_csv_on_s3_is_reported_by_its_uri(s3_env, bucket: str, prefix: str, tmp_path: Path,
                                                  scratch: Path, capsys) -> None:
    raw = tmp_path / "upload"
    raw.mkdir()
    (raw / "morpho.csv").write_text("cell_id,depth,length\nc1,0.5,1.5\nc2,NaN,2.5\nc3,0.1,0.2\n")
    (raw / "gex.csv").write_text("c1,3,0,1\nc2,1,4,0\nc3,0,2,2\n")
    uris = s3_env.upload(raw, bucket, f"{prefix}/bad")
    root = csv_params(tmp_path / "p", modality_a=uris["morpho.csv"], modality_b=uris["gex.csv"])
    code, err = ingest(root, capsys)
    assert code == 2
    # the reader's own message (row, column, fix), about the object, not the temporary download
    assert f"{uris['morpho.csv']}: row 3, column 'depth': modality_a: value 'NaN' is NaN" in err
    assert "xmodal-s3-" not in err
    assert str(scratch) not in err
    assert_nothing_left(root, scratch)


def test_uri_without_key_exits_2(s3_env, tmp_path: Path, capsys) -> None:
    root = csv_params(tmp_path / "p", modality_a="s3://just-a-bucket", modality_b="s3://b/folder/")
    code, err = ingest(root, capsys)
    assert code == 2
    assert "s3://just-a-bucket" in err
    assert "must name one object" in err
    assert "Fix:" in err
    assert not (root / "data").exists()
