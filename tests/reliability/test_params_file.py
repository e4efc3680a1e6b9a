"""params.yaml is bounded and read as a user writes it: anchors, aliases and merge keys within a budget, seeds in
range, the words users write for yes/no fields, presets that say what they lose to, and a --root or --set that is
wrong named as such (issue 28, points 8 and 9)."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path

import pytest
import yaml
from _cli import assert_refused, tiny_params, write_params, xmodal

from xmodal.config import load_params
from xmodal.errors import ConfigError

DEMO_PARAMS = Path(__file__).parents[2] / "params.yaml"


def _bomb(levels: int, *, width: int = 9) -> str:
    """A billion-laughs YAML block: anchor ``l<levels-1>`` stands for ``width ** levels`` strings."""
    lines = ["x-bomb:", f"  l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def _tiny_yaml(**where: str) -> str:
    """``tiny_params()`` as YAML text, with ``key: value`` lines replaced by ``where`` (``{"  embedding_plot": ...}``)."""
    text = yaml.safe_dump(tiny_params(), sort_keys=False)
    for old, new in where.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


# --------------------------------------------------------------------------------------------
# anchors, aliases, merge keys, and their bounds
# --------------------------------------------------------------------------------------------
def test_anchors_aliases_and_merge_keys_are_read_as_yaml_says(tmp_path: Path) -> None:
    text = textwrap.dedent("""\
        x-shared:
          source: &synthetic {kind: synthetic, n_cells: 150, dim_a: 12, dim_b: 40, n_clusters: 3, seed: 1}
        datasets:
          first: {family: paired, source: *synthetic}
          second:
            family: paired
            source:
              <<: *synthetic
              seed: 7          # beside the merge key: wins over the merged value
              n_cells: 160
        runs:
          first-gwot: {dataset: first, method: gwot}
        """)
    path = tmp_path / "params.yaml"
    path.write_text(text)
    params = load_params(path)
    first, second = params.dataset("first").source, params.dataset("second").source
    assert (first.seed, first.n_cells, first.dim_b) == (1, 150, 40)
    assert (second.seed, second.n_cells, second.dim_b, second.n_clusters) == (7, 160, 40, 3)
    assert xmodal(tmp_path, "ingest", "--dataset", "second").rc == 0  # the CLI reads it the same way


def test_an_alias_bomb_is_refused_quickly_naming_the_file(tmp_path: Path) -> None:
    # 9**7 = 4.8 million strings behind one alias, used where a string belongs: expanding it (or printing it in
    # the error) is what an attacker wants
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(7) + _tiny_yaml(**{"embedding_plot: pca": "embedding_plot: *l6"}))
    got = xmodal(tmp_path, "list", params=path, timeout=60)
    message = assert_refused(got, needle=(str(path), "aliases expand to more than"))
    assert len(got.stderr) < 2000, len(got.stderr)  # the expansion is not printed either
    assert len(message) < 400


def test_a_20000_deep_nesting_is_refused_naming_the_file(tmp_path: Path) -> None:
    for name, text in (("lists.yaml", "seed: " + "[" * 20000 + "]" * 20000 + "\n"),
                       ("maps.yaml", "seed: " + "{a: " * 20000 + "1" + "}" * 20000 + "\n")):
        path = tmp_path / name
        path.write_text(text)
        assert_refused(xmodal(tmp_path, "list", params=path, timeout=60),
                       needle=(str(path), "nested more than"))


def test_an_override_is_bounded_like_the_file(tiny_project: Path) -> None:
    value = "[" * 5000 + "]" * 5000
    assert_refused(xmodal(tiny_project, "list", "--set", f"datasets.tiny.description={value}", timeout=60),
                   needle=("--set datasets.tiny.description", "nested more than"))


# --------------------------------------------------------------------------------------------
# seeds
# --------------------------------------------------------------------------------------------
SEEDS = ["seed", "split.seed", "evaluate.seed", "monitor.seed", "tune.sampler_seed", "datasets.tiny.source.seed",
         "preprocess.paired.seed"]


@pytest.mark.parametrize("key", SEEDS)
@pytest.mark.parametrize("value", [-1, 2**32, 10**30])
def test_every_seed_out_of_range_is_a_config_error_naming_it(tmp_path: Path, key: str, value: int) -> None:
    path = write_params(tmp_path, tiny_params())
    with pytest.raises(ConfigError) as caught:
        load_params(path, overrides=[f"{key}={value}"])
    message = str(caught.value)
    assert f"{key}: seed {value} is" in message, message
    assert "from 0 to 4294967295" in message


@pytest.mark.parametrize(("key", "dataset"), [
    ("datasets.tiny.source.seed", "tiny"),  # used by the generator at ingest: a traceback before
    ("datasets.mo.source.seed", "mo"),
])
def test_a_negative_seed_is_exit_2_through_the_cli(tiny_project: Path, key: str, dataset: str) -> None:
    params = tiny_params()
    params["datasets"]["mo"] = {"family": "multiome", "source": {"kind": "synthetic_multiome", "n_cells": 60}}
    write_params(tiny_project, params)
    assert_refused(xmodal(tiny_project, "ingest", "--dataset", dataset, "--set", f"{key}=-3"),
                   needle=(f"{key}: seed -3 is negative",))
    assert not (tiny_project / "data").exists()


def test_the_largest_seed_is_accepted(tmp_path: Path) -> None:
    path = write_params(tmp_path, tiny_params())
    assert load_params(path, overrides=[f"seed={2**32 - 1}"]).seed == 2**32 - 1


# --------------------------------------------------------------------------------------------
# what users write
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("written", "read"), [
    ("no", "no"), ("yes", "yes"), ("No", "no"), ("YES", "yes"), ("off", "no"), ("on", "yes"), ("false", "no"),
    ("true", "yes"), ("' Auto '", "auto"),
])
def test_a_yes_no_field_takes_what_a_user_writes(tmp_path: Path, written: str, read: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(_tiny_yaml(**{"  paired:\n": f"  paired:\n    log1p: {written}\n"}))
    assert load_params(path).preprocess_config("paired").log1p == read
    assert load_params(write_params(tmp_path, tiny_params(), "other.yaml"),
                       overrides=[f"preprocess.paired.log1p={written}"]).preprocess_config("paired").log1p == read


@pytest.mark.parametrize(("written", "read"), [("no", False), ("off", False), ("yes", True), ("on", True),
                                               ("false", False), ("True", True)])
def test_a_boolean_field_still_takes_yes_no_on_off(tmp_path: Path, written: str, read: bool) -> None:
    path = write_params(tmp_path, tiny_params())
    assert load_params(path, overrides=[f"split.stratify={written}"]).split.stratify is read


def test_yes_no_through_the_cli_runs_the_stage(tiny_project: Path) -> None:
    assert xmodal(tiny_project, "ingest", "--dataset", "tiny").rc == 0
    assert xmodal(tiny_project, "preprocess", "--dataset", "tiny", "--set", "preprocess.paired.log1p=no").rc == 0
    schema = yaml.safe_load((tiny_project / "data/processed/tiny/schema.json").read_text())
    assert schema["settings"]["preprocess"]["log1p"] == "no"


def test_words_that_are_names_stay_words(tmp_path: Path) -> None:
    """YAML 1.1 read ``no``/``on`` as booleans everywhere, so a string field holding them was refused."""
    path = tmp_path / "params.yaml"
    path.write_text(_tiny_yaml(**{"    family: paired\n": "    family: paired\n    description: no\n"}))
    assert load_params(path).dataset("tiny").description == "no"


def test_null_for_a_none_word_is_none(tmp_path: Path) -> None:
    path = write_params(tmp_path, tiny_params())
    assert load_params(path, overrides=["methods.gwot.tune=null"]).method("gwot").tune == "none"


# --------------------------------------------------------------------------------------------
# --root and --set
# --------------------------------------------------------------------------------------------
def test_a_root_that_is_a_file_is_named(tiny_project: Path) -> None:
    assert_refused(xmodal(tiny_project, "ingest", "--dataset", "tiny", "--root", "params.yaml", params=None),
                   needle=("--root params.yaml: a file, not a folder",))
    assert_refused(xmodal(tiny_project, "ingest", "--dataset", "tiny", "--root", "no/such/folder", params=None),
                   needle=("--root no/such/folder: no such folder",))
    assert not (tiny_project / "data").exists()


@pytest.mark.parametrize("value", ['{"kind": "synthetic", "n_cells": 150,', "[1, 2", '{"a": 1}}', '"unterminated'])
def test_a_set_value_that_does_not_parse_names_the_key_and_the_value(tiny_project: Path, value: str) -> None:
    message = assert_refused(xmodal(tiny_project, "ingest", "--dataset", "tiny", "--set",
                                    f"datasets.tiny.source={value}"),
                             needle=(f"--set datasets.tiny.source={value}: the value does not parse as YAML or JSON",))
    assert "quote it" in message


def test_params_that_is_a_folder_says_so(tiny_project: Path) -> None:
    assert_refused(xmodal(tiny_project, "list", params=tiny_project),
                   needle=(f"{tiny_project}: a folder, not a parameter file",))


# --------------------------------------------------------------------------------------------
# presets
# --------------------------------------------------------------------------------------------
def test_a_preset_that_would_change_nothing_is_refused_naming_the_fields(tmp_path: Path) -> None:
    # the demo's params set every gwot field: `preset: scot` on top of them was a silent no-op
    message = assert_refused(xmodal(tmp_path, "list", "--set", "methods.gwot.preset=scot", params=DEMO_PARAMS),
                             needle=("methods.gwot: preset 'scot' changes nothing", "epsilon: 0.002 instead of 0.001"))
    assert "remove the fields the preset should decide" in message


def test_a_preset_that_loses_some_fields_says_which_at_train(tiny_project: Path) -> None:
    params = tiny_params()
    params["methods"]["gwot"] = {"preset": "scot", "max_iter": 30, "epsilon": 0.01}
    write_params(tiny_project, params)
    config = load_params(tiny_project / "params.yaml").method("gwot")
    assert config.preset_overridden == {"max_iter": (30, 1000), "epsilon": (0.01, 1e-3)}
    assert (config.distance, config.init, config.n_init) == ("geodesic", "product", 1)  # the rest is SCOT's
    for stage in ("ingest", "preprocess"):
        assert xmodal(tiny_project, stage, "--dataset", "tiny").rc == 0
    got = xmodal(tiny_project, "train", "--dataset", "tiny", "--method", "gwot")
    assert got.rc == 0, got.stderr[-2000:]
    line = next(line for line in got.stderr.splitlines() if "preset 'scot' is overridden by fields set in params" in line)
    assert "max_iter=30 (preset 1000)" in line, line
    assert "epsilon=0.01 (preset 0.001)" in line, line
    assert "methods.gwot: settings that differ from the defaults: preset='scot' (default 'none')" in got.stderr


def test_a_preset_whose_fields_all_agree_is_accepted(tmp_path: Path) -> None:
    from xmodal.methods.gwot._config import PRESETS

    params = tiny_params()
    params["methods"]["gwot"] = {"preset": "scot", **copy.deepcopy(PRESETS["scot"])}
    config = load_params(write_params(tmp_path, params)).method("gwot")
    assert config.preset_overridden == {}
