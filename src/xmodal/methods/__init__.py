"""Methods: an explicit registry and one subpackage per method."""

from __future__ import annotations

from xmodal.methods._base import embed, load_model
from xmodal.methods._registry import METHODS, MethodSpec, get_method

__all__ = ["METHODS", "MethodSpec", "embed", "get_method", "load_model"]
