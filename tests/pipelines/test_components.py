"""The KFP components stay thin: stdlib + kfp at module level, one call into ``xmodal.stages.steps``, pinned image."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

COMPONENTS = Path(__file__).resolve().parents[2] / "components"
STAGES = ("ingest", "preprocess", "train", "train_distributed", "evaluate", "register", "monitor")
#: the one project module a component may import at module level: it names the image (stdlib only itself)
IMAGE_MODULE = "xmodal.components._image"


def _module_imports(tree: ast.Module) -> list[str]:
    names = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
    return names


def _allowed(module: str, *, extra: tuple[str, ...] = ()) -> bool:
    top = module.split(".")[0]
    return top in sys.stdlib_module_names or top == "kfp" or module in extra


def test_every_stage_has_a_component_folder() -> None:
    assert sorted(p.name for p in COMPONENTS.iterdir() if (p / "component.py").is_file()) == sorted(STAGES)


@pytest.mark.parametrize("stage", STAGES)
def test_module_level_imports_are_stdlib_kfp_and_the_image_name(stage: str) -> None:
    tree = ast.parse((COMPONENTS / stage / "component.py").read_text())
    bad = [m for m in _module_imports(tree) if not _allowed(m, extra=(IMAGE_MODULE,))]
    assert not bad, f"components/{stage}/component.py imports {bad} at module level; import inside the function"


def test_the_image_module_imports_only_the_standard_library() -> None:
    tree = ast.parse((COMPONENTS / "_image.py").read_text())
    assert all(m.split(".")[0] in sys.stdlib_module_names for m in _module_imports(tree))


def test_the_guard_rejects_a_heavy_module_level_import() -> None:
    tree = ast.parse("import torch\nfrom kfp import dsl\nfrom xmodal.stages import train\n")
    assert [m for m in _module_imports(tree) if not _allowed(m, extra=(IMAGE_MODULE,))] == ["torch", "xmodal.stages"]


@pytest.mark.parametrize("stage", STAGES)
def test_the_body_is_one_call_into_the_steps(stage: str) -> None:
    tree = ast.parse((COMPONENTS / stage / "component.py").read_text())
    (func,) = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    imported = {alias.asname or alias.name for node in ast.walk(func) if isinstance(node, ast.ImportFrom)
                and node.module == "xmodal.stages.steps" for alias in node.names}
    assert imported == {f"{stage}_step"}
    calls = [n for n in ast.walk(func) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
             and n.func.id in imported]
    assert len(calls) == 1


def test_importing_the_components_pulls_in_no_heavy_library() -> None:
    heavy = ("torch", "scanpy", "anndata", "mlflow", "ot", "evidently", "sklearn", "pandas")
    code = ("import sys, xmodal.components; "
            f"print(','.join(m for m in {heavy!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""


def test_every_component_runs_in_the_pinned_project_image() -> None:
    from xmodal import components
    from xmodal.components._image import IMAGE, VERSION

    assert IMAGE.endswith(f":{VERSION}")
    assert not IMAGE.endswith(":latest")
    for stage in STAGES:
        spec = getattr(components, stage).component_spec
        assert spec.implementation.container.image == IMAGE, stage
