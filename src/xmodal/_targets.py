"""``module:attribute`` targets: how the registries name code they import only when it is used."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def import_target(target: str) -> Any:
    """Import ``module:attribute`` and return the attribute (e.g. ``xmodal.methods.gwot._model:GWOT``)."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]]) -> tuple[list[str], Callable[[str], Any]]:
    """A package's ``__all__`` and module ``__getattr__`` for names that live in its submodules.

    Parameters
    ----------
    package
        The package's ``__name__``.
    exports
        Submodule (``_data``) → the public names it defines.

    Returns
    -------
    tuple
        ``(__all__, __getattr__)``: a name is imported from its submodule on first use.
    """
    where = {name: module for module, names in exports.items() for name in names}

    def getattr_(name: str) -> Any:
        if name in where:
            return getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return sorted(where), getattr_
