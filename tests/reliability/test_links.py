"""No write or delete follows a symbolic link out of the project.

The policy (README, *Bad input, crashes and concurrent runs*): a stage folder (``data/``, ``models/``,
``checkpoints/``, ``reports/`` and the folders of their stages) may be a link, e.g. to another disk: it is
followed and the run says so. Below a stage folder, a link above the output is refused. The output itself may be a
link where the stage replaces it as a whole (model, report folders: the link is replaced, what it points to is
untouched), and is refused where the stage writes into it in place (checkpoint and registry folders). A stale
temporary that is a link is removed as a link, never opened or emptied.

Every test drives the real ``xmodal`` command and compares a snapshot of the folder outside the project, and of
the project, before and after.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from _cli import assert_refused, tiny_params, write_params, xmodal

GEOADVAE = {"dim": 16, "latent_dim": 4, "max_iter": 30, "batch_size": 16, "phase_durations": [10, 10, 10],
            "prior_source": "none", "checkpoint_every": 10, "log_every": 5}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with ``tiny`` processed, gwot trained and evaluated, geoadvae trained (its checkpoint written)."""
    root = tmp_path_factory.mktemp("trained")
    params = tiny_params()
    params["methods"]["geoadvae"] = GEOADVAE
    write_params(root, params)
    for args in (("ingest", "--dataset", "tiny"), ("preprocess", "--dataset", "tiny"),
                 ("train", "--dataset", "tiny", "--method", "gwot"), ("evaluate", "--dataset", "tiny", "--method",
                                                                       "gwot"),
                 ("train", "--dataset", "tiny", "--method", "geoadvae")):
        assert xmodal(root, *args).rc == 0, args
    return root


@pytest.fixture
def project(trained: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "project", symlinks=True))


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the project holding files of its own (and a file named like a stale temporary)."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "keep.txt").write_text("not xmodal's\n")
    (folder / ".checkpoint.pt.tmp-99999-0badf00d").write_text("looks stale, is not xmodal's\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "data.bin").write_bytes(os.urandom(64))
    return folder


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (hidden ones included, links not followed) → its content hash, link or kind."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_fifo():
            out[rel] = "fifo"
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


def _link(path: Path, target: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target, target_is_directory=True)


# ------------------------------------------------------------------------------------------ in-place folders
@pytest.mark.parametrize("resume", [False, True], ids=["fresh", "resume"])
def test_a_linked_checkpoint_folder_receives_nothing_and_loses_nothing(project: Path, outside: Path,
                                                                       resume: bool) -> None:
    shutil.copy2(project / "checkpoints/tiny/geoadvae/checkpoint.pt", outside / "checkpoint.pt")
    _link(project / "checkpoints/tiny/geoadvae", outside)
    theirs, ours = snapshot(outside), snapshot(project)
    got = xmodal(project, "train", "--dataset", "tiny", "--method", "geoadvae", *(["--resume"] if resume else []))
    assert_refused(got, needle=("checkpoints/tiny/geoadvae", "symbolic link", "remove the link"))
    assert snapshot(outside) == theirs  # no checkpoint written there, its "stale" file not removed
    assert snapshot(project) == ours  # and no model, temporary or folder in the project


def test_a_linked_registry_folder_is_refused_before_the_registry_is_touched(project: Path, outside: Path) -> None:
    _link(project / "reports/registry/tiny/gwot", outside)
    theirs, ours = snapshot(outside), snapshot(project)
    got = xmodal(project, "register", "--dataset", "tiny", "--method", "gwot")
    assert_refused(got, needle=("reports/registry/tiny/gwot", "symbolic link"))
    assert snapshot(outside) == theirs  # no decision.json there
    assert snapshot(project) == ours  # no MLflow store either


# ------------------------------------------------------------------------------------------ links below a stage folder
@pytest.mark.parametrize(("link", "args"), [
    ("checkpoints/tiny", ("train", "--dataset", "tiny", "--method", "geoadvae")),
    ("models/tiny", ("train", "--dataset", "tiny", "--method", "gwot")),
    ("reports/tiny", ("evaluate", "--dataset", "tiny", "--method", "gwot")),
])
def test_a_link_between_a_stage_folder_and_its_output_is_refused(project: Path, link: str,
                                                                 args: tuple[str, ...]) -> None:
    """Even one that stays inside the stage folder: below it, only the output itself may be a link."""
    real = project / link
    elsewhere = real.with_name("elsewhere")
    real.rename(elsewhere)
    real.symlink_to(elsewhere.name, target_is_directory=True)
    before = snapshot(project)
    assert_refused(xmodal(project, *args), needle=(link, "symbolic link", "nothing was written"))
    assert snapshot(project) == before


# ------------------------------------------------------------------------------------------ outputs replaced whole
@pytest.mark.parametrize(("output", "args"), [
    ("models/tiny/gwot", ("train", "--dataset", "tiny", "--method", "gwot")),
    ("reports/tiny/gwot", ("evaluate", "--dataset", "tiny", "--method", "gwot")),
])
def test_a_linked_model_or_report_folder_is_replaced_never_followed(project: Path, outside: Path, output: str,
                                                                    args: tuple[str, ...]) -> None:
    shutil.copytree(project / output, outside / "copy")
    _link(project / output, outside)
    theirs = snapshot(outside)
    got = xmodal(project, *args)
    assert got.rc == 0, got.stderr[-2000:]
    assert snapshot(outside) == theirs
    assert not (project / output).is_symlink()
    assert (project / output / ("model.json" if output.startswith("models") else "metrics.json")).is_file()


# ------------------------------------------------------------------------------------------ stale temporaries
@pytest.mark.parametrize(("folder", "name", "args"), [
    ("models/tiny", ".gwot", ("train", "--dataset", "tiny", "--method", "gwot")),
    ("checkpoints/tiny/geoadvae", ".checkpoint.pt", ("train", "--dataset", "tiny", "--method", "geoadvae")),
])
def test_stale_temporaries_that_are_links_are_removed_as_links(project: Path, outside: Path, folder: str, name: str,
                                                               args: tuple[str, ...]) -> None:
    """A temporary that is a link to a folder, a file or a FIFO: the link goes; what it points to is never opened
    (a FIFO would block the run), emptied or removed."""
    os.mkfifo(outside / "fifo")
    here = project / folder
    links = {f"{name}.tmp-99991-0000aaaa": outside / "sub", f"{name}.tmp-99992-0000bbbb": outside / "keep.txt",
             f"{name}.tmp-99993-0000cccc": outside / "fifo", f"{name}.old-99994-0000dddd": outside / "sub"}
    for link, target in links.items():
        (here / link).symlink_to(target)
    theirs = snapshot(outside)
    got = xmodal(project, *args, timeout=120)
    assert got.rc == 0, got.stderr[-2000:]
    assert not [p.name for p in here.iterdir() if p.name in links]
    assert snapshot(outside) == theirs


# ------------------------------------------------------------------------------------------ linked stage folders
def test_a_stage_folder_that_is_a_link_is_followed_and_the_run_says_so(project: Path, tmp_path: Path) -> None:
    """``models/``, ``checkpoints/``, ``reports/`` and ``data/processed`` on another disk: the outputs go there,
    each run logs where, and the links stay links."""
    disk = tmp_path / "disk"
    disk.mkdir()
    moved = ("models", "checkpoints", "reports", "data/processed")
    for name in moved:
        (disk / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(project / name, disk / name)
        (project / name).symlink_to(disk / name, target_is_directory=True)
    shutil.rmtree(disk / "models/tiny/geoadvae")
    shutil.rmtree(disk / "reports/tiny")
    got = xmodal(project, "train", "--dataset", "tiny", "--method", "geoadvae", "--resume")
    assert got.rc == 0, got.stderr[-2000:]
    for name in ("models", "checkpoints", "data/processed"):
        assert f"{project / name} is a symbolic link to {disk / name}" in got.stderr, name
    assert "resuming from" in got.stderr  # the checkpoint was read there
    got = xmodal(project, "evaluate", "--dataset", "tiny", "--method", "geoadvae")
    assert got.rc == 0, got.stderr[-2000:]
    assert f"{project / 'reports'} is a symbolic link to {disk / 'reports'}" in got.stderr
    assert (disk / "models/tiny/geoadvae/model.json").is_file()
    assert (disk / "checkpoints/tiny/geoadvae/checkpoint.pt").is_file()
    assert (disk / "reports/tiny/geoadvae/metrics.json").is_file()
    assert all((project / name).is_symlink() for name in moved)


def test_a_folder_where_a_file_output_goes_is_exit_2_naming_it(project: Path) -> None:
    """``reports/summary.json`` is written into ``reports/`` in place: a folder there is named, not written over."""
    summary = project / "reports/summary.json"
    (summary / "inside").mkdir(parents=True)
    before = snapshot(project)
    assert_refused(xmodal(project, "report"), needle=(str(summary), "a folder stands where this file goes"))
    assert snapshot(project) == before


# ------------------------------------------------------------------------------------------ the library, called directly
def test_the_engine_and_the_cleanup_refuse_a_linked_checkpoint_folder_when_called_directly(outside: Path,
                                                                                             tmp_path: Path) -> None:
    """Not only through the stages: ``xmodal.train.fit`` and ``remove_stale_in`` given a link touch nothing."""
    import importlib.util

    from xmodal._io import remove_stale_in
    from xmodal.errors import ConfigError
    from xmodal.train import EngineSettings, StepLoader, fit

    spec = importlib.util.spec_from_file_location("_xmodal_tests_linear", Path(__file__).parents[1] / "train/_linear.py")
    linear = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(linear)
    link = tmp_path / "ckpt"
    link.symlink_to(outside, target_is_directory=True)
    theirs = snapshot(outside)
    assert remove_stale_in(link) == []
    loader = StepLoader(lambda step, rank, world: {"step": step}, total=3)
    with pytest.raises(ConfigError, match="symbolic link"):
        fit(linear.Linear(), loader, settings=EngineSettings(device="cpu"), digest="d", seed=0, checkpoint_dir=link)
    assert snapshot(outside) == theirs


def test_a_registry_lock_that_is_a_link_is_refused(project: Path, outside: Path) -> None:
    """The registry's lock file (beside the sqlite store) is never opened through a link: opening it created the
    link's target outside the project."""
    _link(project / "mlflow.db.lock", outside / "created-by-xmodal")
    before = snapshot(outside)
    assert_refused(xmodal(project, "register", "--dataset", "tiny", "--method", "gwot"),
                   needle=(str(project / "mlflow.db.lock"), "symbolic link"))
    assert snapshot(outside) == before
    assert not (outside / "created-by-xmodal").exists()


def test_a_lock_file_is_never_a_link_or_a_folder(tmp_path: Path, outside: Path) -> None:
    from xmodal._locks import file_lock
    from xmodal.errors import ConfigError

    (tmp_path / "a.lock").symlink_to(outside / "victim")
    (tmp_path / "b.lock").mkdir()
    for name, needle in (("a.lock", "symbolic link"), ("b.lock", "is a folder")):
        with pytest.raises(ConfigError, match=needle), file_lock(tmp_path / name, what="a test"):
            pass
    assert not (outside / "victim").exists()
    with file_lock(tmp_path / "c.lock", what="a test"):
        assert (tmp_path / "c.lock").is_file()
