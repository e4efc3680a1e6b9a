"""Exit 2 with one message, not a traceback, for every bad input — files, parameters, stores, sizes — and
exit 130/143 with how to go on when a run is interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml
from _cli import ENV, XMODAL, assert_refused, tiny_params, tree, write_params, xmodal

from _files import small_multiome, write_10x, write_labels

TINY_GEOADVAE = {"dim": 16, "latent_dim": 4, "max_iter": 100000, "batch_size": 16, "phase_durations": [10, 10, 10],
                 "prior_clusters": 4, "prior_loss_warmup": 5, "checkpoint_every": 5, "log_every": 50}


def _with_dataset(root: Path, name: str, config: dict) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["datasets"][name] = config
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def _multiome(root: Path, **domain: str) -> None:
    """Dataset ``mo``: one file-based domain ``d``, plus a second synthetic-free domain from the same file."""
    _with_dataset(root, "mo", {"family": "multiome", "source": {"kind": "files", "domains": [{"name": "d", **domain}]}})


@pytest.fixture
def tenx(tiny_project: Path) -> tuple[Path, Path, list[str]]:
    data = small_multiome()
    path = write_10x(tiny_project / "matrix.h5", data)
    return tiny_project, path, list(map(str, data.rna.obs_names))


@pytest.fixture(scope="module")
def _trained_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    write_params(root, tiny_params())
    for stage in ("ingest", "preprocess"):
        assert xmodal(root, stage, "--dataset", "tiny").rc == 0
    for stage in ("train", "evaluate"):
        assert xmodal(root, stage, "--dataset", "tiny", "--method", "gwot").rc == 0
    return root


@pytest.fixture
def trained(_trained_once: Path, tmp_path: Path) -> Path:
    """A project with ``tiny`` trained and evaluated by gwot (a fresh copy per test)."""
    import shutil

    return Path(shutil.copytree(_trained_once, tmp_path / "project", symlinks=True))


# --------------------------------------------------------------------------------------------
# multiome labels files
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["duplicate id", "ragged row", "binary", "bad phase", "blank phase"])
def test_a_bad_labels_file_of_a_10x_domain_names_the_labels_file(tenx, damage: str) -> None:
    root, matrix, ids = tenx
    labels = write_labels(root / "labels.csv", ids, ["G1"] * len(ids))
    lines = labels.read_text().splitlines()
    if damage == "duplicate id":
        lines.append(lines[3])
        needle = ("duplicate cell id", repr(ids[2]))
    elif damage == "ragged row":
        lines[4] += ",extra"
        needle = ("row 5", "fields")
    elif damage == "binary":
        labels.write_bytes(os.urandom(2048))
        needle = "UTF-8"
    elif damage == "bad phase":
        lines[6] = f"{ids[5]},M-phase"
        needle = ("row 7", "'M-phase'", "phase")
    else:
        lines[6] = f"{ids[5]},"
        needle = ("row 7", "empty phase")
    if damage != "binary":
        labels.write_text("\n".join(lines) + "\n")
    _multiome(root, format="10x_h5", path=str(matrix), labels=str(labels))
    message = assert_refused(xmodal(root, "ingest", "--dataset", "mo"), needle=needle)
    assert message.split(": ")[2].startswith(str(labels)), message  # the labels file, not the matrix
    assert not (root / "data/ingested/mo").exists()


# --------------------------------------------------------------------------------------------
# HDF5 files of the wrong kind
# --------------------------------------------------------------------------------------------
def _h5ad(path: Path) -> Path:
    ad.AnnData(X=np.ones((5, 3), dtype=np.float32)).write_h5ad(path)
    return path


def _other_hdf5(path: Path) -> Path:
    import h5py

    with h5py.File(path, "w") as f:
        f["numbers"] = np.arange(10)
    return path


@pytest.mark.parametrize(("fmt", "make", "needle"), [
    ("10x_h5", _h5ad, "is an .h5ad"),
    ("10x_h5", _other_hdf5, "HDF5 file of another layout"),
    ("h5mu", _h5ad, "is an .h5ad"),
    ("h5mu", "tenx", "is a 10x Cell Ranger feature-barcode matrix"),
    ("h5mu", _other_hdf5, "HDF5 file of another layout"),
])
def test_an_hdf5_of_another_kind_is_named_as_what_it_is(tenx, fmt: str, make, needle: str) -> None:
    root, matrix, _ = tenx
    path = matrix if make == "tenx" else make(root / "file.h5")
    _multiome(root, format=fmt, path=str(path))
    assert_refused(xmodal(root, "ingest", "--dataset", "mo"), needle=(str(path), needle))


def test_a_10x_matrix_given_as_an_h5ad_of_a_paired_dataset_is_named(tenx) -> None:
    root, matrix, _ = tenx
    _with_dataset(root, "pa", {"family": "paired", "source": {"kind": "anndata", "path_a": str(matrix), "path_b": str(matrix)}})
    assert_refused(xmodal(root, "ingest", "--dataset", "pa"), needle=(str(matrix), "10x Cell Ranger"))


# --------------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("case", "args", "needle"), [
    ("binary params", ["--params", "binary.yaml"], "not a text file"),
    ("yaml error in --set", ["--set", "methods.gwot.epsilon=[0.1,"], "not valid YAML"),
    ("mapping with a duplicate in --set", ["--set", "evaluate={k: 1, k: 2}"], "a second time"),
    ("nan", ["--set", "methods.gwot.epsilon=.nan"], "finite"),
    ("inf", ["--set", "register.min_improvement=.inf"], "register.min_improvement"),
    ("minus inf gate", ["--set", "register.gates.gwot.foscttm.max=-.inf"], "finite"),
    ("empty key part", ["--set", "methods..epsilon=1"], "empty part"),
])
def test_bad_parameters_are_one_message(tiny_project: Path, case: str, args: list[str], needle: str) -> None:
    (tiny_project / "binary.yaml").write_bytes(os.urandom(512) + b"\x00\xff")
    extra = [] if "--params" in args else ["--params", "params.yaml"]
    got = xmodal(tiny_project, "ingest", "--dataset", "tiny", *args, *extra, "--root", str(tiny_project),
                 params=None)
    assert_refused(got, needle=needle)
    assert not (tiny_project / "data").exists()


def test_a_key_given_twice_in_params_yaml_is_an_error_naming_the_line(tiny_project: Path) -> None:
    text = (tiny_project / "params.yaml").read_text()
    (tiny_project / "params.yaml").write_text(text + "seed: 5\n")
    assert_refused(xmodal(tiny_project, "ingest", "--dataset", "tiny"), needle=("'seed' a second time", "line"))


@pytest.mark.parametrize(("uri", "needle"), [
    ("ftp://example.org/mlflow", "not an MLflow tracking store"),
    ("mlruns", "scheme 'none'"),
    ("sqlite:///{missing}/mlflow.db", "does not exist"),
])
def test_an_unsupported_tracking_uri_is_one_message(trained: Path, uri: str, needle: str) -> None:
    root = trained
    uri = uri.format(missing=root.parent / "no-such-folder")
    before = tree(root)
    got = xmodal(root, "register", "--dataset", "tiny", "--method", "gwot", "--set", f"register.tracking_uri={uri}")
    assert_refused(got, needle=("register.tracking_uri", needle))
    env_got = xmodal(root, "register", "--dataset", "tiny", "--method", "gwot", env={"MLFLOW_TRACKING_URI": uri})
    assert_refused(env_got, needle=("$MLFLOW_TRACKING_URI", needle))
    assert tree(root) == before


@pytest.mark.parametrize(("dataset", "key"), [("tiny", "n_cells"), ("mo", "n_cells")])
def test_an_absurd_size_is_refused_before_any_allocation(tiny_project: Path, dataset: str, key: str) -> None:
    if dataset == "mo":
        _with_dataset(tiny_project, "mo", {"family": "multiome", "source": {"kind": "synthetic_multiome"}})
    got = xmodal(tiny_project, "ingest", "--dataset", dataset, "--set",
                 f"datasets.{dataset}.source.{key}=1000000000000", timeout=120)
    assert_refused(got, needle=("needs about", "available", f"source.{key}"))


def test_a_model_too_large_for_memory_is_one_message(tiny_project: Path) -> None:
    root = tiny_project
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["methods"]["geoadvae"] = {**TINY_GEOADVAE, "max_iter": 30, "dim": 10**9}  # 10^9-unit layers
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("ingest", "preprocess"):
        assert xmodal(root, stage, "--dataset", "tiny").rc == 0
    got = xmodal(root, "train", "--dataset", "tiny", "--method", "geoadvae", timeout=120)
    assert_refused(got, needle=("out of memory; nothing was written", "widths or batch size"))
    assert not (root / "models").exists()


# --------------------------------------------------------------------------------------------
# interruptions
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_training_says_how_to_resume(tiny_project: Path, sig: signal.Signals, code: int) -> None:
    root = tiny_project
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["methods"]["geoadvae"] = TINY_GEOADVAE
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("ingest", "preprocess"):
        assert xmodal(root, stage, "--dataset", "tiny").rc == 0
    cmd = [str(XMODAL), "train", "--dataset", "tiny", "--method", "geoadvae", "--params", "params.yaml"]
    proc = subprocess.Popen(cmd, cwd=root, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint = root / "checkpoints/tiny/geoadvae/checkpoint.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert checkpoint.is_file(), proc.stderr.read() if proc.poll() is not None else "no checkpoint in 120 s"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr[-2000:]
    assert "Traceback" not in stderr
    assert "interrupted; resume with `xmodal train --dataset tiny --method geoadvae --params params.yaml --resume`" \
        in stderr
    assert not list(root.glob("models/**/model.json"))
    assert not list(root.glob("models/tiny/.*"))  # no temporary left behind
    # the checkpoint it left resumes (a max_iter already reached: it finishes at once and saves the model)
    assert xmodal(root, "train", "--dataset", "tiny", "--method", "geoadvae", "--resume",
                  "--set", "methods.geoadvae.max_iter=5").rc == 0
    assert (root / "models/tiny/geoadvae/model.json").is_file()


def test_an_interrupted_stage_without_checkpoints_says_nothing_was_written(tiny_project: Path) -> None:
    root = tiny_project
    for stage in ("ingest", "preprocess"):
        assert xmodal(root, stage, "--dataset", "tiny").rc == 0
    cmd = [str(XMODAL), "train", "--dataset", "tiny", "--method", "gwot", "--params", "params.yaml",
           "--set", "methods.gwot.max_iter=100000000", "--set", "methods.gwot.tol=0"]
    proc = subprocess.Popen(cmd, cwd=root, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while not any("fitting" in line for line in lines) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, "".join(lines)[-2000:]
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    reader.join(timeout=30)
    stderr = "".join(lines)
    assert proc.returncode == 130, stderr[-2000:]
    assert "no model was written" in stderr
    assert not (root / "models").exists() or not any((root / "models").rglob("*.npy"))


# --------------------------------------------------------------------------------------------
# damaged outputs of earlier stages, and inputs of the wrong kind between stages
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("damaged", "command", "named"), [
    ("data/processed/tiny/data.h5mu", ("train", "--method", "gwot"), "data/processed/tiny/data.h5mu"),
    ("data/processed/tiny/preprocessor_a/mean.npy", ("register", "--method", "gwot"),
     "data/processed/tiny/preprocessor_a"),
    ("data/processed/tiny/preprocessor_b/meta.json", ("register", "--method", "gwot"),
     "data/processed/tiny/preprocessor_b/meta.json"),
    ("reports/tiny/gwot/metrics.json", ("register", "--method", "gwot"), "reports/tiny/gwot/metrics.json"),
    ("models/tiny/gwot/z_ref_b.npy", ("evaluate", "--method", "gwot"), "models/tiny/gwot"),
    ("models/tiny/gwot/model.json", ("evaluate", "--method", "gwot"), "models/tiny/gwot/model.json"),
])
def test_a_damaged_output_of_an_earlier_stage_is_exit_2_naming_it(trained: Path, damaged: str,
                                                                   command: tuple[str, ...], named: str) -> None:
    path = trained / damaged
    content = path.read_bytes()
    path.write_bytes(content[: max(len(content) // 3, 1)])  # truncated
    message = assert_refused(xmodal(trained, command[0], "--dataset", "tiny", *command[1:]))
    assert message.split(": error: ", 1)[1].startswith(str(trained / named)), message


def test_monitor_new_data_that_is_a_csv_is_named(trained: Path) -> None:
    (trained / "new.csv").write_text("cell,a\nc1,1\n")
    assert_refused(xmodal(trained, "monitor", "--dataset", "tiny", "--new", "new.csv"),
                   needle=(str(trained / "new.csv"), "not an HDF5 file"))


def test_duplicate_feature_names_in_an_h5ad_are_refused(tiny_project: Path) -> None:
    x = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    for name in ("a", "b"):
        adata = ad.AnnData(X=x, obs=pd.DataFrame(index=[f"c{i}" for i in range(30)]))
        adata.var_names = ["g1", "g2", "g2", "g3"] if name == "b" else ["m1", "m2", "m3", "m4"]
        adata.write_h5ad(tiny_project / f"{name}.h5ad")
    _with_dataset(tiny_project, "pa", {"family": "paired", "source": {"kind": "anndata", "path_a": str(tiny_project / "a.h5ad"),
                                                  "path_b": str(tiny_project / "b.h5ad")}})
    assert_refused(xmodal(tiny_project, "ingest", "--dataset", "pa"),
                   needle=(str(tiny_project / "b.h5ad"), "'g2' appears twice"))
