"""Reading files that are pickles by design, without ever running code from them.

Pickle can call any importable function while it loads, so a crafted file runs code on the loader's
machine. Nothing in xmodal reads a pickle with :func:`pickle.load` or ``torch.load(weights_only=False)``:

* :func:`load_torch` reads PyTorch files (checkpoints, ``weights.pt``, scFoundation's ``models.ckpt``)
  with ``torch.load(weights_only=True)`` — PyTorch's own restricted unpickler, which builds tensors and
  plain containers only — extended by :data:`PLAIN_GLOBALS` where a file needs NumPy scalars or arrays;
* :func:`load_pickle` reads plain pickles (Geneformer's ``.pkl`` dictionaries) with
  :class:`RestrictedUnpickler`, which admits the same plain types and nothing else.

Anything else in the file — a class, a function, ``os.system`` — is refused before it is touched, with
:class:`~xmodal.errors.XmodalInputError` (exit code 2) naming the file and the refused global. A truncated
or corrupt file gets the same error.
"""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path
from typing import Any

from xmodal.errors import XmodalInputError, first_line

#: ``(module, name)`` of every global a plain-data pickle may name: builtin containers and numbers, and
#: NumPy scalars, dtypes and arrays (NumPy 1 pickles say ``numpy.core``, NumPy 2 pickles ``numpy._core``)
PLAIN_GLOBALS: frozenset[tuple[str, str]] = frozenset({
    ("builtins", name) for name in ("dict", "list", "tuple", "set", "frozenset", "int", "float", "complex",
                                    "bool", "str", "bytes", "bytearray", "slice", "range")
} | {("collections", "OrderedDict")} | {
    (module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("scalar", "_reconstruct")
} | {(module, "_frombuffer") for module in ("numpy.core.numeric", "numpy._core.numeric")  # protocol 5 arrays
     } | {("numpy", "dtype"), ("numpy", "ndarray")} | {("_codecs", "encode")})  # protocol-2 pickles build bytes so

_REFUSED = re.compile(r"GLOBAL ([\w.]+)")


def _resolve(module: str, name: str) -> Any:
    import numpy as np

    if module == "builtins":
        import builtins

        return getattr(builtins, name)
    if module == "collections":
        import collections

        return getattr(collections, name)
    if module == "_codecs":
        import _codecs

        return getattr(_codecs, name)
    if module.startswith("numpy.") and module.endswith(".multiarray"):
        return getattr(np._core.multiarray, name)
    if module.startswith("numpy.") and module.endswith(".numeric"):
        return getattr(np._core.numeric, name)
    return getattr(np, name)


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle named a global outside :data:`PLAIN_GLOBALS`."""

    def __init__(self, module: str, name: str) -> None:
        self.qualname = f"{module}.{name}"
        super().__init__(f"refused global {self.qualname}")


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds plain data only: every global outside :data:`PLAIN_GLOBALS` is refused.

    Examples
    --------
    >>> import io, pickle
    >>> RestrictedUnpickler(io.BytesIO(pickle.dumps({"a": [1, 2.5]}))).load()
    {'a': [1, 2.5]}
    """

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102 - pickle's hook
        import _compat_pickle  # Python 2 names (protocols 0-2), as pickle's own find_class maps them

        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) not in PLAIN_GLOBALS:
            raise RefusedGlobal(module, name)
        return _resolve(module, name)


def load_pickle(path: str | Path, *, what: str, fix: str) -> Any:
    """Read a plain-data pickle (dicts, lists, numbers, strings, NumPy scalars and arrays) from ``path``.

    Parameters
    ----------
    path
        The file.
    what
        What it is, for messages (``"Geneformer token dictionary"``).
    fix
        What to do when the file cannot be read.

    Raises
    ------
    XmodalInputError
        The file names a global outside :data:`PLAIN_GLOBALS` (nothing of it is run), or it is truncated,
        corrupt or not a pickle.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
        return RestrictedUnpickler(io.BytesIO(data)).load()
    except RefusedGlobal as exc:
        raise XmodalInputError(f"{what}: refused to load: the file names {exc.qualname}, which is not plain data "
                               "(loading it could run code)", path=path, fix=fix) from None
    except Exception as exc:  # noqa: BLE001 - every unreadable file gets the same clear error
        raise XmodalInputError(f"{what}: not a readable pickle ({type(exc).__name__}: {exc})", path=path,
                               fix=fix) from None


def _torch_safe_globals() -> list[Any]:
    """:data:`PLAIN_GLOBALS` beyond what ``torch.load(weights_only=True)`` admits, as its allow-list entries."""
    builtin = {("builtins", n) for n in ("dict", "list", "tuple", "set", "int", "float", "bool", "str", "bytes")}
    builtin |= {("_codecs", "encode")}
    import numpy as np

    entries: list[Any] = [(_resolve(module, name), f"{module}.{name}")
                          for module, name in sorted(PLAIN_GLOBALS - builtin - {("collections", "OrderedDict")})]
    # a NumPy dtype is rebuilt as its concrete class (numpy.dtypes.Float64DType, ...), which torch checks too
    entries += [type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDG"]
    return entries


def load_torch(path: str | Path, *, what: str, fix: str, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` admitting NumPy scalars and arrays too; errors name the file.

    Parameters
    ----------
    path
        A file written by ``torch.save``.
    what
        What it is, for messages (``"checkpoint"``, ``"model weights"``).
    fix
        What to do when the file cannot be read.
    map_location
        As for :func:`torch.load`.

    Raises
    ------
    XmodalInputError
        The file holds Python objects other than tensors and plain data (refused unread: loading them could
        run code), or it is truncated, corrupt or not a PyTorch file.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise XmodalInputError(f"{what}: file not found", path=path, fix=fix)
    try:
        with torch.serialization.safe_globals(_torch_safe_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _REFUSED.search(str(exc))
        if found:
            raise XmodalInputError(f"{what}: refused to load: the file holds {found[1]}, which is not a tensor or "
                                   "plain data (loading it could run code)", path=path, fix=fix) from None
        raise XmodalInputError(f"{what}: not a readable PyTorch file ({first_line(exc)})", path=path,
                               fix=fix) from None
    except Exception as exc:  # noqa: BLE001 - truncated zips, bad magic numbers, ... get the same clear error
        raise XmodalInputError(f"{what}: truncated, corrupt or not a PyTorch file ({type(exc).__name__}: "
                               f"{first_line(exc)})", path=path, fix=fix) from None
