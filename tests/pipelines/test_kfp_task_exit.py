"""A KFP task process skips module teardown after a successful step, and only then (real kfp.local tasks)."""

# no `from __future__ import annotations`: KFP reads the component's real annotations
from pathlib import Path

import pytest
from kfp import dsl, local

from xmodal.stages._kfp_task import should_exit_fast


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def probe(marker_dir: str, fail: bool) -> str:
    """A step that leaves two witnesses: an exit handler it registers, and an object torn down at exit."""
    import atexit
    from pathlib import Path

    from xmodal.stages._kfp_task import kfp_task

    class Witness:
        def __del__(self) -> None:
            Path(marker_dir, "teardown_ran").write_text("module teardown ran")

    @kfp_task
    def step() -> str:
        globals()["_witness"] = Witness()
        atexit.register(lambda: Path(marker_dir, "handler_ran").write_text("exit handler ran"))
        if fail:
            raise RuntimeError("planted failure")
        return "ok"

    return step()


@pytest.fixture
def runner(tmp_path: Path) -> Path:
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"),
               raise_on_error=True)
    markers = tmp_path / "markers"
    markers.mkdir()
    return markers


def _seen(markers: Path) -> set[str]:
    return {p.name for p in markers.iterdir()}


def test_a_successful_task_runs_the_exit_handlers_and_skips_teardown(runner: Path) -> None:
    assert probe(marker_dir=str(runner), fail=False).output == "ok"
    assert _seen(runner) == {"handler_ran"}


def test_a_failing_task_still_fails_and_exits_normally(runner: Path) -> None:
    with pytest.raises(RuntimeError, match="FAILURE"):
        probe(marker_dir=str(runner), fail=True)
    assert _seen(runner) == {"handler_ran", "teardown_ran"}


def test_the_switch_keeps_the_normal_exit(runner: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XMODAL_FAST_EXIT", "0")
    assert probe(marker_dir=str(runner), fail=False).output == "ok"
    assert _seen(runner) == {"handler_ran", "teardown_ran"}


def test_the_rule() -> None:
    ok = {"succeeded": True, "in_executor": True, "uncaught": None, "switch": None}
    assert should_exit_fast(**ok)
    assert not should_exit_fast(**{**ok, "succeeded": False})
    assert not should_exit_fast(**{**ok, "in_executor": False})  # xmodal commands, pytest, notebooks
    assert not should_exit_fast(**{**ok, "uncaught": RuntimeError("after the step")})
    assert not should_exit_fast(**{**ok, "switch": "0"})
