"""Load ``params.yaml`` with CLI overrides into :class:`~xmodal.config.Params`."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from xmodal.config._models import Params
from xmodal.errors import ConfigError

_TYPE_WORDS = {
    "float": "expected float",
    "int": "expected int",
    "bool": "expected bool",
    "string": "expected string",
    "dict": "expected a mapping",
    "list": "expected a list",
    "tuple": "expected a list",
}


def load_params(path: str | Path = "params.yaml", *, overrides: Iterable[str] = ()) -> Params:
    """Read, override and validate the parameter file.

    Parameters
    ----------
    path
        The YAML file. A missing file is an error; an empty file means all defaults.
    overrides
        ``dotted.key=value`` strings; values are parsed as YAML (``1e-3``, ``true``, ``[1, 2]``).

    Returns
    -------
    Params
        Validated parameters; ``params.methods[name]`` holds each method's typed config.

    Raises
    ------
    ConfigError
        Naming the dotted key and what was expected, e.g. ``methods.gwot.epsilon: expected float``.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: a folder, not a parameter file (pass the YAML file itself: --params "
                          f"{path / 'params.yaml'})")
    if not path.is_file():
        raise ConfigError(f"{path}: parameter file not found (run from the project root or pass --params)")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the parameter file ({exc.strerror})") from None
    if size > MAX_PARAMS_BYTES:
        raise ConfigError(f"{path}: {size:,} bytes, more than a parameter file holds (at most "
                          f"{MAX_PARAMS_BYTES:,}); is it the right file?")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text file (byte {exc.start} is not UTF-8); give the YAML params file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the parameter file ({exc.strerror})") from None
    raw = parse_yaml(text, source=str(path)) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    return params_from_dict(apply_overrides(raw, overrides), source=str(path))


MAX_PARAMS_BYTES = 8 * 1024 * 1024
"""The largest parameter file read (a params.yaml is a few KiB)."""
MAX_YAML_NODES = 200_000
"""The most values a YAML text may stand for once its aliases are expanded (an alias bomb stands for billions)."""
MAX_YAML_DEPTH = 100
"""The deepest nesting of mappings and lists accepted (params.yaml nests about 6 deep)."""
EXTENSION_PREFIX = "x-"
"""Top-level keys starting with this hold YAML anchors for reuse (``x-source: &src {...}``); they are dropped
before validation, as Docker Compose does."""

_MERGE_TAG = "tag:yaml.org,2002:merge"
_BOOL_TAG = "tag:yaml.org,2002:bool"


class _ParamsLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2's booleans, merge keys, and no key given twice in one mapping.

    * Only ``true``/``false`` (any case) are booleans, as in YAML 1.2 and in DVC's own reading of params.yaml:
      ``log1p: no`` is the word ``no``, not ``False`` (a boolean field still takes ``yes``/``no``/``on``/``off``).
    * ``<<: *anchor`` merges a mapping; keys written beside it win, as YAML specifies.
    * A key written twice (PyYAML keeps the last one silently) is an error naming both lines.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: let PyYAML's own check report it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark, f"found the key {key!r} a second time "
                    f"(first on line {seen[key].line + 1}); remove one of them", key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


_ParamsLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _ParamsLoader.construct_mapping)
_ParamsLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_ParamsLoader.add_implicit_resolver(_BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _check_size(text: str, *, source: str) -> None:
    """Refuse YAML that nests deeper than :data:`MAX_YAML_DEPTH` or whose aliases expand to more than
    :data:`MAX_YAML_NODES` values, from the parser's events (linear in the text, no recursion)."""
    depth, nodes = 0, 0
    sizes: dict[str, int] = {}  # anchor → values it stands for
    opened: list[tuple[str | None, int]] = []
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise ConfigError(f"{source}: nested more than {MAX_YAML_DEPTH} levels deep (line "
                                  f"{event.start_mark.line + 1}); params.yaml nests a few levels: flatten it")
            opened.append((event.anchor, nodes))
            nodes += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            anchor, start = opened.pop()
            if anchor is not None:
                sizes[anchor] = nodes - start
        elif isinstance(event, yaml.ScalarEvent):
            nodes += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            nodes += sizes.get(event.anchor, 1)
        if nodes > MAX_YAML_NODES:
            raise ConfigError(f"{source}: its aliases expand to more than {MAX_YAML_NODES:,} values (line "
                              f"{event.start_mark.line + 1}; an alias bomb?); use anchors for shared settings, "
                              "not for repeated expansion")


def parse_yaml(text: str, *, source: str) -> Any:
    """Parse YAML text safely (no Python objects), within a size budget, refusing duplicate keys.

    Anchors, aliases and merge keys (``<<: *base``) are accepted; booleans are YAML 1.2's (see
    :class:`_ParamsLoader`).

    Raises
    ------
    ConfigError
        ``<source>: not valid YAML (line L, column C): <problem>``; nesting deeper than :data:`MAX_YAML_DEPTH`;
        aliases that expand beyond :data:`MAX_YAML_NODES` values.
    """
    try:
        _check_size(text, source=source)
        return yaml.load(text, Loader=_ParamsLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        raise ConfigError(f"{source}: not valid YAML{where}: {problem}" + (f", {context}" if context else "")) from None
    except RecursionError:  # pragma: no cover - _check_size bounds the depth first
        raise ConfigError(f"{source}: nested too deeply to read") from None


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``a.b.c=value`` override set (values parsed as YAML)."""
    out = copy.deepcopy(dict(raw))
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected dotted.key=value")
        parts = key.strip().split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {item!r}: {'.'.join(parts[: i + 1])} is not a section")
            node = nxt
        if any(not part.strip() for part in parts):
            raise ConfigError(f"override {item!r}: an empty part in the dotted key")
        node[parts[-1]] = _override_value(value, key=key.strip()) if value.strip() else None
    return out


def _override_value(value: str, *, key: str) -> Any:
    """The value of ``--set key=value``, parsed as YAML (so JSON too); an error names the key and the value."""
    try:
        return parse_yaml(value, source=f"--set {key}")
    except ConfigError as exc:
        problem = str(exc).removeprefix(f"--set {key}: ")
        raise ConfigError(f"--set {key}={value}: the value does not parse as YAML or JSON ({problem}); fix the value "
                          "and quote it for the shell, e.g. --set 'methods.gwot.epsilon=0.01' or "
                          "--set 'datasets.x.holdout=[{\"sex\": \"female\"}]'") from None


def params_from_dict(raw: Mapping[str, Any], *, source: str = "params") -> Params:
    """Validate a parameter mapping (what :func:`load_params` does after reading the file).

    Each ``datasets.<name>`` entry is validated by its family's config class, each ``preprocess.<family>`` by the
    family's preprocessing config and each ``methods.<name>`` by the method's config (the registries say which).
    """
    raw = {key: value for key, value in raw.items() if not str(key).startswith(EXTENSION_PREFIX)}
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format(exc, source=source)) from None
    datasets = {name: _validate_dataset(name, cfg, source=source) for name, cfg in params.datasets.items()}
    preprocess = {name: _validate_preprocess(name, cfg, source=source) for name, cfg in params.preprocess.items()}
    methods = {name: _validate_method(name, cfg, source=source) for name, cfg in params.methods.items()}
    params = params.model_copy(update={"datasets": datasets, "preprocess": preprocess, "methods": methods})
    _check_runs(params, source=source)
    return params


def _validate_dataset(name: str, cfg: Any, *, source: str) -> BaseModel:
    from xmodal.families import FAMILIES

    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{source}: datasets.{name}: expected a mapping (got {cfg!r})")
    family = cfg.get("family")
    if family is None:
        raise ConfigError(f"{source}: datasets.{name}.family: required key is missing (one of: {sorted(FAMILIES)})")
    if family not in FAMILIES:
        raise ConfigError(f"{source}: datasets.{name}.family: unknown data family {family!r} (known: "
                          f"{sorted(FAMILIES)})")
    cls = FAMILIES[family].dataset_config_cls()
    try:
        return cls.model_validate(cfg)
    except ValidationError as exc:
        raise ConfigError(_format(exc, source=source, prefix=("datasets", name), tags=_kinds(cls))) from None


def _validate_preprocess(name: str, cfg: Any, *, source: str) -> BaseModel:
    from xmodal.families import FAMILIES

    if name not in FAMILIES:
        raise ConfigError(f"{source}: preprocess.{name}: unknown data family (known: {sorted(FAMILIES)}); the "
                          "shares of the split are under `split:`")
    try:
        return FAMILIES[name].preprocess_config_cls().model_validate(cfg or {})
    except ValidationError as exc:
        raise ConfigError(_format(exc, source=source, prefix=("preprocess", name))) from None


def _validate_method(name: str, cfg: Any, *, source: str) -> BaseModel:
    from xmodal.methods import METHODS, get_method

    if name not in METHODS:
        raise ConfigError(f"{source}: methods.{name}: unknown method (known: {sorted(METHODS)})")
    try:
        return get_method(name).config_cls().model_validate(cfg or {})
    except ValidationError as exc:
        raise ConfigError(_format(exc, source=source, prefix=("methods", name))) from None


def _check_runs(params: Params, *, source: str) -> None:
    from xmodal.methods import METHODS

    seen: dict[tuple[str, str], str] = {}
    for name, run in params.runs.items():
        where = f"{source}: runs.{name}"
        if run.dataset not in params.datasets:
            raise ConfigError(f"{where}.dataset: {run.dataset!r} is not in datasets (known: {sorted(params.datasets)})")
        if run.method not in METHODS:
            raise ConfigError(f"{where}.method: unknown method {run.method!r} (known: {sorted(METHODS)})")
        family = params.datasets[run.dataset].family
        if METHODS[run.method].family != family:
            raise ConfigError(f"{where}: method {run.method!r} works on family {METHODS[run.method].family!r}, but "
                              f"dataset {run.dataset!r} is of family {family!r}")
        other = seen.setdefault((run.dataset, run.method), name)
        if other != name:
            raise ConfigError(f"{where}: runs {other!r} and {name!r} both train {run.method!r} on {run.dataset!r} "
                              "(they would write the same model folder): remove one")


def _kinds(cls: Any) -> frozenset[str]:
    """The ``kind`` tags of the discriminated union in ``cls``'s ``source`` field (pydantic puts them in error
    locations)."""
    import typing

    field = getattr(cls, "model_fields", {}).get("source")
    tags: set[str] = set()

    def walk(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            kind = annotation.model_fields.get("kind")
            if kind is not None and isinstance(kind.default, str):
                tags.add(kind.default)
            return
        for arg in typing.get_args(annotation):
            walk(arg)

    if field is not None:
        walk(field.annotation)
    return frozenset(tags)


def _format(exc: ValidationError, *, source: str, prefix: tuple[str, ...] = (),
            tags: frozenset[str] = frozenset()) -> str:
    """One line per problem: ``params.yaml: methods.gwot.epsilon: expected float (got 'abc')``."""
    lines = []
    for err in exc.errors():
        parts = [str(p) for p in err["loc"]]
        loc = prefix + tuple(p for i, p in enumerate(parts) if not (i > 0 and parts[i - 1] == "source" and p in tags))
        if loc and loc[-1] == "[key]":  # a bad mapping key: name the mapping, then the key
            path = f"{'.'.join(loc[:-2]) or '<top>'}: key {loc[-2]!r}"
        else:
            path = ".".join(loc) or "<top>"
        lines.append(f"{source}: {path}: {_describe(err)}")
    return "\n".join(lines)


def _describe(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    got = err.get("input")
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; see the defaults in xmodal.config)"
    if kind == "missing":
        return "required key is missing"
    for word, text in _TYPE_WORDS.items():
        if kind.startswith(word):
            return f"{text} (got {_short(got)})"
    msg = err.get("msg", kind)
    if kind == "value_error":  # our own validators
        msg = msg.removeprefix("Value error, ")
        if isinstance(got, str | int | float) and repr(got) in msg:  # the message already names the value
            return msg
    return f"{msg} (got {_short(got)})" if got is not None and not isinstance(got, dict) else msg


def _short(value: Any) -> str:
    """``repr(value)``, shortened (a value built from aliases can stand for millions of items)."""
    import reprlib

    short = reprlib.Repr()  # Python 3.11's takes no keyword arguments
    short.maxlevel, short.maxlist, short.maxdict, short.maxstring, short.maxother = 3, 6, 6, 80, 80
    return short.repr(value)
