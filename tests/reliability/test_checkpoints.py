"""A checkpoint belongs to one run: another dataset's is refused, and every damaged piece is exit 2 naming it.

Each test resumes a real geoadvae checkpoint through the real ``xmodal train --resume`` after changing one thing:
the data it is resumed on (another dataset of the same shapes, the same dataset split another way), one piece of
the saved state (rewritten with ``torch.save``, so the file itself reads fine), or what stands at the checkpoint's
path. A refusal must be one message naming the file (and the piece), exit 2, and leave everything as it was: the
model folder, the checkpoint, and no temporaries.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from _cli import ENV, assert_refused, tiny_params, write_params, xmodal

KILLER = Path(__file__).with_name("_killer.py")

# no prior (its GW matching costs seconds per start), three phases of ten steps, a checkpoint every ten
GEOADVAE = {"dim": 16, "latent_dim": 4, "max_iter": 30, "batch_size": 16, "phase_durations": [10, 10, 10],
            "prior_source": "none", "checkpoint_every": 10, "log_every": 5}
CKPT = "checkpoints/tiny/geoadvae/checkpoint.pt"


def _params() -> dict[str, Any]:
    params = tiny_params()
    params["methods"]["geoadvae"] = dict(GEOADVAE)
    # the same generator with another seed: the same shapes, other cells
    params["datasets"]["other"] = {**params["datasets"]["tiny"],
                                   "source": {**params["datasets"]["tiny"]["source"], "seed": 2}}
    return params


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with ``tiny`` and ``other`` processed and geoadvae trained on ``tiny`` (30 steps)."""
    root = tmp_path_factory.mktemp("trained")
    write_params(root, _params())
    for dataset in ("tiny", "other"):
        for stage in ("ingest", "preprocess"):
            assert xmodal(root, stage, "--dataset", dataset).rc == 0
    assert xmodal(root, "train", "--dataset", "tiny", "--method", "geoadvae").rc == 0
    return root


@pytest.fixture
def project(trained: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "project", symlinks=True))


def _digest(folder: Path) -> dict[str, str]:
    """Every file and link under ``folder`` (hidden ones included) → its content hash or link target."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = "-> " + str(p.readlink())
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


def _resume(root: Path, dataset: str = "tiny", *extra: str):
    return xmodal(root, "train", "--dataset", dataset, "--method", "geoadvae", "--resume", *extra)


# ------------------------------------------------------------------------------------------ another run's checkpoint
def test_a_checkpoint_of_another_dataset_with_the_same_shapes_is_refused(project: Path) -> None:
    theirs = project / "checkpoints/other/geoadvae/checkpoint.pt"
    theirs.parent.mkdir(parents=True)
    shutil.copy2(project / CKPT, theirs)
    before = _digest(project)
    got = _resume(project, "other")
    assert_refused(got, needle=(str(Path("checkpoints/other/geoadvae/checkpoint.pt")), "training data"))
    assert _digest(project) == before  # no model of `other`, no new checkpoint, no temporary


def test_a_checkpoint_of_the_same_dataset_split_another_way_is_refused(project: Path) -> None:
    assert xmodal(project, "preprocess", "--dataset", "tiny", "--set", "split.seed=2").rc == 0
    before = _digest(project)
    got = _resume(project, "tiny", "--set", "split.seed=2")
    assert_refused(got, needle=(CKPT, "training data"))
    assert _digest(project) == before


def test_the_same_data_and_settings_resume_bit_identical(project: Path, trained: Path) -> None:
    """The checks do not refuse their own run: killed after writing the checkpoint of step 20 (before renaming
    it), resumed from step 10, the run ends with the weights of the uninterrupted one, bit for bit."""
    shutil.rmtree(project / "checkpoints")
    shutil.rmtree(project / "models")
    cmd = [sys.executable, str(KILLER), "torch:save:2:after", "--", "train", "--dataset", "tiny", "--method",
           "geoadvae", "--params", str(project / "params.yaml"), "--root", str(project)]
    done = subprocess.run(cmd, cwd=project, env=ENV, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert [p.name for p in (project / CKPT).parent.glob(".checkpoint.pt.tmp-*")]  # the half-written one
    got = _resume(project)
    assert got.rc == 0, got.stderr[-2000:]
    assert "resuming from" in got.stderr
    assert not list((project / CKPT).parent.glob(".*"))  # the dead run's temporary is gone
    ours = torch.load(project / "models/tiny/geoadvae/weights.pt", weights_only=True)
    uninterrupted = torch.load(trained / "models/tiny/geoadvae/weights.pt", weights_only=True)
    assert ours.keys() == uninterrupted.keys()
    for key, value in uninterrupted.items():
        assert torch.equal(ours[key], value), key


# ------------------------------------------------------------------------------------------ damaged pieces
def _set(*keys: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(state: dict[str, Any]) -> None:
        node = state
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value(node[keys[-1]]) if callable(value) else value
    return change


def _extra_group(state: dict[str, Any]) -> None:
    groups = state["optimizer_states"][0]["param_groups"]
    groups.append({**groups[0], "params": [10_000]})


def _best_state_of_other_shapes(state: dict[str, Any]) -> None:
    engine = state["callbacks"]["xmodal_engine"]
    weights = {k: v.clone() for k, v in state["state_dict"].items()}
    first = next(iter(weights))
    weights[first] = torch.zeros(2, 2)
    engine.update(best_step=10, best_value=0.5, best_state=weights)


ENGINE = ("callbacks", "xmodal_engine")
DAMAGE: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "optimizer state of another shape": (
        _set("optimizer_states", 0, "state", 0, "exp_avg", value=torch.zeros(3, 3)),
        "optimizer_states[0]/state[0]/exp_avg"),
    "optimizer state not finite": (
        _set("optimizer_states", 1, "state", 0, "exp_avg_sq", value=lambda t: torch.full_like(t, float("nan"))),
        "optimizer_states[1]/state[0]/exp_avg_sq"),
    "an extra optimizer group": (_extra_group, "optimizer_states[0]/param_groups"),
    "a learning rate that is text": (
        _set("optimizer_states", 0, "param_groups", 0, "lr", value="fast"), "optimizer_states[0]/param_groups[0]/lr"),
    "one optimizer missing": (_set("optimizer_states", value=lambda s: s[:1]), "optimizer_states"),
    "a scheduler counter that is text": (
        _set("lr_schedulers", 0, "last_epoch", value="thirty"), "lr_schedulers[0]/last_epoch"),
    "a scheduler entry that would replace its optimizer": (
        _set("lr_schedulers", 1, "optimizer", value={}), "lr_schedulers[1]"),
    "a negative loop counter": (
        _set("loops", "fit_loop", "epoch_loop.batch_progress", "total", "ready", value=-5),
        "loops/fit_loop/epoch_loop.batch_progress/total/ready"),
    "a negative loader position": (
        _set("loops", "fit_loop", "state_dict", "combined_loader", value=[{"step": -3, "world": 1}]),
        "loops/fit_loop/state_dict/combined_loader/step"),
    "a history that is not a list": (_set(*ENGINE, "history", value={"step": 1.0}), "xmodal_engine/history"),
    "a history value that is text": (
        _set(*ENGINE, "history", value=lambda h: [{**h[0], "loss_total": "low"}, *h[1:]]),
        "xmodal_engine/history[0]/loss_total"),
    "a best state that does not fit the model": (_best_state_of_other_shapes, "xmodal_engine/best_state"),
    "a stale counter that is text": (_set(*ENGINE, "stale", value="x"), "xmodal_engine/stale"),
    "a torch RNG state of the wrong size": (
        _set(*ENGINE, "rng", "torch", value=torch.zeros(16, dtype=torch.uint8)), "xmodal_engine/rng/torch"),
    "a NumPy RNG state of the wrong size": (
        _set(*ENGINE, "rng", "numpy", "keys", value=torch.zeros(10, dtype=torch.int64)),
        "xmodal_engine/rng/numpy/keys"),
    "a Python RNG state of the wrong length": (
        _set(*ENGINE, "rng", "python", value=[3, list(range(10)), None]), "xmodal_engine/rng/python"),
    "weights that are not finite": (
        _set("state_dict", value=lambda w: {k: torch.full_like(v, float("inf")) if v.is_floating_point() else v
                                            for k, v in w.items()}), "state_dict/"),
    "the method's own values of the wrong kind": (_set("xmodal_module", value="sums"), "xmodal_module"),
    "a Lightning version that is no version": (
        _set("pytorch-lightning_version", value="banana"), "pytorch-lightning_version"),
}


THROUGH_THE_CLI = ("optimizer state of another shape", "a negative loop counter", "a Python RNG state of the wrong length")


def _damage(project: Path, damage: str) -> str:
    change, piece = DAMAGE[damage]
    ckpt = project / CKPT
    state = torch.load(ckpt, weights_only=True)
    change(state)
    torch.save(state, ckpt)
    return piece


@pytest.mark.parametrize("damage", THROUGH_THE_CLI)
def test_a_damaged_piece_is_exit_2_naming_the_file_and_the_piece(project: Path, damage: str) -> None:
    piece = _damage(project, damage)
    before = _digest(project)
    message = assert_refused(_resume(project), needle=(CKPT, piece, "damaged"))
    assert "Fix:" in message
    assert _digest(project) == before  # the model, the checkpoint and every folder as they were


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_every_damaged_piece_is_refused_by_the_train_stage_before_anything_is_written(project: Path,
                                                                                       damage: str) -> None:
    """Every piece, through the train stage in this process (the CLI maps the error to exit 2, tested above)."""
    from xmodal.config import load_params
    from xmodal.errors import XmodalInputError
    from xmodal.stages import train

    piece = _damage(project, damage)
    before = _digest(project)
    with pytest.raises(XmodalInputError) as refused:
        train.run(load_params(project / "params.yaml"), dataset="tiny", method="geoadvae", root=project,
                  resume=True)
    for part in (CKPT, piece, "damaged"):
        assert part in str(refused.value), (part, str(refused.value))
    assert _digest(project) == before


# ------------------------------------------------------------------------------------------ what stands at its path
@pytest.mark.parametrize("resume", [True, False], ids=["resume", "fresh"])
def test_a_folder_where_the_checkpoint_goes_is_exit_2_before_any_training(project: Path, resume: bool) -> None:
    ckpt = project / CKPT
    ckpt.unlink()
    (ckpt / "inside").mkdir(parents=True)
    before = _digest(project)
    got = xmodal(project, "train", "--dataset", "tiny", "--method", "geoadvae", *(["--resume"] if resume else []))
    assert_refused(got, needle=(CKPT, "a folder, not a checkpoint file"))
    assert "fitting" not in got.stderr  # refused before the data were read
    assert _digest(project) == before


def test_a_link_where_the_checkpoint_is_read_is_refused(project: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.pt"
    ckpt = project / CKPT
    shutil.move(ckpt, elsewhere)
    ckpt.symlink_to(elsewhere)
    before, theirs = _digest(project), elsewhere.read_bytes()
    assert_refused(_resume(project), needle=(CKPT, "symbolic link"))
    assert _digest(project) == before
    assert elsewhere.read_bytes() == theirs


def test_the_data_hash_changes_with_the_cells_and_only_with_them() -> None:
    """What the digest's data part tells apart: one value, the order of cells, the type and layout of a matrix."""
    import numpy as np
    import scipy.sparse as sp

    from xmodal.train import data_hash

    x = np.random.default_rng(0).poisson(1.0, size=(20, 6)).astype(np.float32)
    base = data_hash(x, np.arange(20))
    assert data_hash(x.copy(), np.arange(20)) == base  # the same cells: the same hash
    one = x.copy()
    one[3, 2] += 1
    assert data_hash(one, np.arange(20)) != base
    assert data_hash(x[::-1].copy(), np.arange(20)) != base  # the same cells in another order
    assert data_hash(x.astype(np.float64), np.arange(20)) != base
    assert data_hash(x.reshape(10, 12), np.arange(20)) != base  # the same bytes, another shape
    assert data_hash(sp.csr_matrix(x), np.arange(20)) != base
    assert data_hash(sp.csr_matrix(x)) == data_hash(sp.csc_matrix(x))  # one matrix, whatever its layout
    assert data_hash(torch.from_numpy(x), np.arange(20)) == base
    assert data_hash(x, None) != data_hash(x, np.arange(20))
