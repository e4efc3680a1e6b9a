"""Crash-safe writes: a process SIGKILLed mid-write never damages the previous output, and what it left is removed.

Each test kills a real ``xmodal`` subprocess at a chosen point (``_killer.py``) and then checks (1) that the
previous output is whole, byte for byte, (2) that the next run of the stage removes the dead process's
temporaries, and (3) that outputs get the permissions the umask gives.
"""

from __future__ import annotations

import hashlib
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from _cli import ENV, xmodal

KILLER = Path(__file__).with_name("_killer.py")


def _killed(root: Path, kill_at: str, *args: str, no_exchange: bool = False) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(KILLER), kill_at, *(["--no-exchange"] if no_exchange else []), "--", *args,
           "--params", str(root / "params.yaml"), "--root", str(root)]
    done = subprocess.run(cmd, cwd=root, env=ENV, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stderr[-2000:])
    return done


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


@pytest.fixture
def ingested(tiny_project: Path) -> Path:
    assert xmodal(tiny_project, "ingest", "--dataset", "tiny").rc == 0
    return tiny_project


def test_a_kill_while_ingest_writes_keeps_the_old_output_and_the_next_run_cleans_up(ingested: Path) -> None:
    root = ingested
    out = root / "data/ingested/tiny"
    before = _digest(out)
    # schema.json is written after data.h5mu: die with half an output in the temporary folder
    _killed(root, "xmodal._io:write_json:1:before", "ingest", "--dataset", "tiny",
            "--set", "datasets.tiny.source.noise=0.5")
    assert _digest(out) == before
    left = _leftovers(out.parent)
    assert len(left) == 1, left
    assert left[0].startswith(".tiny.tmp-"), left
    assert (out.parent / left[0] / "data.h5mu").is_file()  # the half-written output
    assert not (out.parent / left[0] / "schema.json").exists()

    assert xmodal(root, "ingest", "--dataset", "tiny").rc == 0
    assert _leftovers(out.parent) == []
    assert _digest(out) == before  # same params, same bytes


def test_a_kill_while_train_saves_the_model_keeps_the_old_model(ingested: Path) -> None:
    root = ingested
    assert xmodal(root, "preprocess", "--dataset", "tiny").rc == 0
    assert xmodal(root, "train", "--dataset", "tiny", "--method", "gwot").rc == 0
    out = root / "models/tiny/gwot"
    before = _digest(out)
    _killed(root, "numpy:save:2:after", "train", "--dataset", "tiny", "--method", "gwot",
            "--set", "methods.gwot.epsilon=0.02")
    assert _digest(out) == before
    (left,) = _leftovers(out.parent)
    assert len(list((out.parent / left).glob("*.npy"))) == 2  # half a model, never loaded as one
    # another stage does not touch train's temporaries; train's own next start does
    assert xmodal(root, "evaluate", "--dataset", "tiny", "--method", "gwot").rc == 0
    assert _leftovers(out.parent) == [left]
    assert xmodal(root, "train", "--dataset", "tiny", "--method", "gwot").rc == 0
    assert _leftovers(out.parent) == []
    assert _digest(out) == before


def test_a_kill_while_preprocess_saves_keeps_the_old_output(ingested: Path) -> None:
    root = ingested
    assert xmodal(root, "preprocess", "--dataset", "tiny").rc == 0
    out = root / "data/processed/tiny"
    before = _digest(out)
    _killed(root, "numpy:save:1:after", "preprocess", "--dataset", "tiny", "--set", "preprocess.paired.n_pcs=5")
    assert _digest(out) == before
    (left,) = _leftovers(out.parent)
    assert (out.parent / left / "data.h5mu").is_file()  # the processed data, without its preprocessors
    assert xmodal(root, "preprocess", "--dataset", "tiny").rc == 0
    assert _leftovers(out.parent) == []
    assert _digest(out) == before


def test_a_kill_between_the_two_renames_of_the_fallback_swap_never_loses_the_output(ingested: Path) -> None:
    root = ingested
    out = root / "data/ingested/tiny"
    before = _digest(out)
    # without an atomic exchange the swap is: old → .tiny.old-…, new → tiny; die in between
    _killed(root, "pathlib:Path.rename:2:before", "ingest", "--dataset", "tiny",
            "--set", "datasets.tiny.source.noise=0.5", no_exchange=True)
    assert not out.exists()
    assert any(name.startswith(".tiny.old-") for name in _leftovers(out.parent))
    # the next reader finds the old output back in place, whole
    assert xmodal(root, "preprocess", "--dataset", "tiny").rc == 0
    assert _digest(out) == before
    assert xmodal(root, "ingest", "--dataset", "tiny").rc == 0
    assert _leftovers(out.parent) == []


def test_a_kill_right_after_the_atomic_exchange_leaves_the_new_output_whole(ingested: Path) -> None:
    root = ingested
    out = root / "data/ingested/tiny"
    before = _digest(out)
    # the exchange is one step: right after it the new output is in place and the old one waits for removal
    _killed(root, "xmodal._io:_remove:1:before", "ingest", "--dataset", "tiny",
            "--set", "datasets.tiny.source.noise=0.5")
    after = _digest(out)
    assert after != before
    assert set(after) == set(before)
    (left,) = _leftovers(out.parent)
    assert _digest(out.parent / left) == before  # the old output, complete, to be removed
    assert xmodal(root, "ingest", "--dataset", "tiny").rc == 0
    assert _leftovers(out.parent) == []


def test_outputs_get_the_permissions_of_the_umask_not_0700(ingested: Path) -> None:
    root = ingested
    assert xmodal(root, "preprocess", "--dataset", "tiny").rc == 0
    assert xmodal(root, "report").rc == 0
    for folder in (root / "data/ingested/tiny", root / "data/processed/tiny",
                   root / "data/processed/tiny/preprocessor_a"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755, folder
    for file in (root / "data/ingested/tiny/schema.json", root / "reports/summary.json"):
        assert stat.S_IMODE(file.stat().st_mode) == 0o644, file


def test_a_live_writer_keeps_its_temporary_while_another_process_cleans_up(tmp_path: Path) -> None:
    """Only temporaries whose writer died are removed: a live writer holds a lock on its own."""
    from xmodal._io import atomic_dir, remove_stale

    target = tmp_path / "out"
    code = ("import sys, time; from xmodal._io import atomic_dir\n"
            f"with atomic_dir({str(target)!r}) as tmp:\n"
            "    (tmp / 'part').write_text('x'); print(tmp, flush=True); time.sleep(60)\n")
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        tmp = Path(writer.stdout.readline().strip())
        assert tmp.is_dir()
        assert remove_stale(target) == []
        assert tmp.is_dir()
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
        assert remove_stale(target) == [tmp]
    finally:
        writer.kill()
        writer.wait(timeout=30)
    with atomic_dir(target) as fresh:
        (fresh / "ok").write_text("ok")
    assert (target / "ok").read_text() == "ok"
    assert _leftovers(tmp_path) == []
