"""Untrusted names: no dataset, method, domain or model name can make a stage write or delete outside its folder.

A victim folder outside the project holds a file; a neighbouring dataset inside the project holds outputs.
Every bad name must be refused with exit 2 and one message, and both folders must stay exactly as they were.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from _cli import assert_refused, tree, write_params, xmodal

from xmodal.errors import ConfigError

BAD_NAMES = {
    "absolute": None,  # filled in with the victim's absolute path
    "dotdot": "../victim",
    "dotdot-alone": "..",
    "dot": ".",
    "empty": "",
    "slash": "tiny/../../victim",
    "hidden": ".tiny",
    "option-like": "-rf",
    "reserved": "registry",
    "reserved-file": "Summary.json",
    "space": "my data",
}


TINY_PARAMS: dict = {}


@pytest.fixture
def world(tiny_project: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(project, victim)``: a project with dataset ``tiny`` ingested, and a folder outside it."""
    TINY_PARAMS.update(yaml.safe_load((tiny_project / "params.yaml").read_text()))
    victim = tmp_path_factory.mktemp("outside") / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("do not delete")
    assert xmodal(tiny_project, "ingest", "--dataset", "tiny").rc == 0
    return tiny_project, victim


def _bad(name: str, victim: Path) -> str:
    return str(victim) if BAD_NAMES[name] is None else BAD_NAMES[name]


@pytest.mark.parametrize("case", sorted(BAD_NAMES))
def test_a_bad_dataset_name_in_params_is_refused_before_anything_is_written(world, case) -> None:
    project, victim = world
    bad = _bad(case, victim)
    params = copy.deepcopy(TINY_PARAMS)
    params["datasets"][bad] = params["datasets"]["tiny"]
    write_params(project, params)
    before, outside = tree(project / "data"), tree(victim)
    message = assert_refused(xmodal(project, "ingest", f"--dataset={bad}"), needle=("dataset name", repr(bad)))
    assert "letters, digits" in message  # the rule is stated
    assert tree(project / "data") == before
    assert tree(victim) == outside
    assert not (project / "models").exists()


@pytest.mark.parametrize("field", ["runs", "pipeline", "set"])
def test_bad_names_are_refused_wherever_params_hold_them(world, field) -> None:
    project, victim = world
    params = copy.deepcopy(TINY_PARAMS)
    args: list[str] = ["list"]
    if field == "runs":
        params["runs"]["victim-gwot"] = {"dataset": "../victim", "method": "gwot"}
    elif field == "pipeline":
        params["pipeline"] = {"dataset": str(victim)}
    else:
        args = ["ingest", "--dataset", "tiny", "--set", "datasets./x.family=paired"]
    write_params(project, params)
    before = tree(project)
    assert_refused(xmodal(project, *args), needle="dataset name")
    assert tree(project) == before


@pytest.mark.parametrize(("where", "value"), [
    ("domain", "line/a"), ("domain", ".."), ("modality", "a/b"), ("modality", ""), ("model", "../{dataset}")])
def test_domain_modality_and_registered_model_names_follow_the_rule(world, where, value) -> None:
    project, _ = world
    params = copy.deepcopy(TINY_PARAMS)
    if where == "domain":
        params["datasets"]["mo"] = {"family": "multiome", "source": {"kind": "synthetic_multiome",
                                                                     "domains": ["ok", value]}}
    elif where == "modality":
        params["datasets"]["tiny"]["source"]["names"] = ["ok", value]
    else:
        params["register"] = {"model_name_template": value}
    write_params(project, params)
    assert_refused(xmodal(project, "list"), needle=repr(value.format(dataset="pbmc68k")))


def test_dataset_names_that_differ_only_in_case_are_refused(world) -> None:
    project, _ = world
    params = copy.deepcopy(TINY_PARAMS)
    params["datasets"]["TINY"] = params["datasets"]["tiny"]
    write_params(project, params)
    assert_refused(xmodal(project, "list"), needle="'tiny' and 'TINY' differ only in case")


def test_two_modalities_with_one_name_are_refused(world) -> None:
    project, _ = world
    params = copy.deepcopy(TINY_PARAMS)
    params["datasets"]["tiny"]["source"]["names"] = ["same", "same"]
    write_params(project, params)
    assert_refused(xmodal(project, "list"), needle="modality names must differ")


def test_registered_as_and_method_names_from_the_command_line_are_checked(world) -> None:
    project, victim = world
    before, outside = tree(project), tree(victim)
    assert_refused(xmodal(project, "register", "--dataset", "tiny", "--method", "gwot", "--registered-as",
                          "../victim"), needle="dataset name '../victim'")
    assert_refused(xmodal(project, "train", "--dataset", "tiny", "--method", "../gwot"), needle="unknown method")
    assert tree(project) == before
    assert tree(victim) == outside


def test_a_symbolic_link_inside_the_project_cannot_redirect_an_output(world) -> None:
    project, victim = world
    (project / "models").mkdir()
    (project / "models" / "tiny").symlink_to(victim, target_is_directory=True)
    assert xmodal(project, "preprocess", "--dataset", "tiny").rc == 0
    outside = tree(victim)
    assert_refused(xmodal(project, "train", "--dataset", "tiny", "--method", "gwot"), needle="outside")
    assert tree(victim) == outside


# --------------------------------------------------------------------------------------------
# below the CLI: the stage functions themselves refuse, even if a caller skipped params validation
# (a pipeline step gets its dataset name as a plain string)
# --------------------------------------------------------------------------------------------
def _unvalidated(bad: str):
    from xmodal.config import params_from_dict

    params = params_from_dict(TINY_PARAMS)
    datasets = {**params.datasets, bad: params.datasets["tiny"]}
    return params.model_copy(update={"datasets": datasets})  # model_copy does not validate


@pytest.mark.parametrize("case", ["absolute", "dotdot", "dot", "empty", "slash"])
def test_every_stage_function_refuses_a_bad_name_that_skipped_validation(world, case) -> None:
    from xmodal.stages import evaluate, ingest, monitor, preprocess, register, train
    from xmodal.stages.steps import preprocess_step

    project, victim = world
    bad = _bad(case, victim)
    params = _unvalidated(bad)
    before, outside = tree(project), tree(victim)
    calls = {
        "ingest": lambda: ingest.run(params, dataset=bad, root=project),
        "preprocess": lambda: preprocess.run(params, dataset=bad, root=project),
        "train": lambda: train.run(params, dataset=bad, method="gwot", root=project),
        "evaluate": lambda: evaluate.run(params, dataset=bad, method="gwot", root=project),
        "register": lambda: register.run(params, dataset=bad, method="gwot", root=project),
        "monitor": lambda: monitor.run(params, dataset=bad, new=project / "data/ingested/tiny", root=project),
        "preprocess_step": lambda: preprocess_step(params.model_dump_json(by_alias=True), dataset=bad,
                                                   ingested=project / "data/ingested/tiny",
                                                   output=project / "out"),
    }
    for stage, call in calls.items():
        with pytest.raises(ConfigError, match="dataset name"):
            call()
        assert tree(project) == before, stage
        assert tree(victim) == outside, stage
