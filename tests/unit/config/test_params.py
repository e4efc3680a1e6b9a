"""params.yaml → typed models: errors name the dotted key and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from xmodal.config import load_params, params_from_dict
from xmodal.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]


def test_project_params_yaml_loads_with_typed_method_config() -> None:
    params = load_params(ROOT / "params.yaml")
    from xmodal.methods.gwot import GWOTConfig

    assert isinstance(params.methods["gwot"], GWOTConfig)
    assert params.registry.gates["gwot"]["foscttm"].max == 0.3


def test_override_beats_file_and_file_beats_default() -> None:
    params = load_params(ROOT / "params.yaml", overrides=["methods.gwot.epsilon=0.02"])
    assert params.methods["gwot"].epsilon == 0.02
    assert load_params(ROOT / "params.yaml").methods["gwot"].max_iter == 300  # file (default 500)
    assert params_from_dict({"methods": {"gwot": {}}}).methods["gwot"].max_iter == 500


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"methods": {"gwot": {"epsilon": "abc"}}}, "methods.gwot.epsilon: expected float"),
        ({"methods": {"gwot": {"epsilom": 0.1}}}, "methods.gwot.epsilom: unknown key"),
        ({"methods": {"nope": {}}}, "methods.nope: unknown method"),
        ({"preprocess": {"paired": {"n_pcs": "many"}}}, "preprocess.paired.n_pcs: expected int"),
        ({"datasets": {"x": {"family": "paired", "source": {"kind": "synthetic", "n_cels": 5}}}},
         "datasets.x.source.n_cels: unknown key"),
        ({"datasets": {"x": {"family": "multiome", "source": {"kind": "synthetic_multiome", "n_cels": 5}}}},
         "datasets.x.source.n_cels: unknown key"),
        ({"datasets": {"x": {"source": {"kind": "synthetic"}}}}, "datasets.x.family: required key is missing"),
        ({"datasets": {"x": {"family": "visium"}}}, "datasets.x.family: unknown data family 'visium'"),
        ({"preprocess": {"visium": {}}}, "preprocess.visium: unknown data family"),
        ({"preprocess": {"validation_fraction": 0.2}}, "preprocess.validation_fraction: unknown data family"),
        ({"split": {"validation_fraction": 0.45, "test_fraction": 0.4}}, "split: validation_fraction"),
        ({"runs": {"r": {"dataset": "missing", "method": "gwot"}}}, "runs.r.dataset: 'missing'"),
        ({"datasets": {"x": {"family": "paired"}}, "runs": {"r": {"dataset": "x", "method": "dualdann"}}},
         "runs.r: method 'dualdann' works on family 'multiome', but dataset 'x' is of family 'paired'"),
        ({"datasets": {"x": {"family": "paired"}}, "runs": {"r": {"dataset": "x", "method": "gwot"},
                                                            "s": {"dataset": "x", "method": "gwot"}}},
         "runs.s: runs 'r' and 's' both train 'gwot' on 'x'"),
    ],
)
def test_config_errors_name_the_key(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("'", ".")):
        params_from_dict(raw)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
