"""Which transaction analyzers exist: the built-ins listed here, plus plugins of the entry-point group
`kamiyo.analyzers`, keyed by their kebab-case id.

Built-ins are named as data (`module:Class` references) and imported only when the registry is loaded, so importing
this module, or the configuration, stays cheap. A built-in that fails to import is our bug and refuses the whole
registry; a plugin that fails is logged and skipped, since it is someone else's code and must not stop the daemon
(a config table for it is then refused as naming an unknown analyzer, so nothing is silently turned off). Two
classes claiming one id are refused loudly, naming both and where each came from. This module must not
instantiate analyzers or decide which are enabled: that is the runner's job.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from ... import log
from ...config import ConfigError, _problems, line_error, line_errors
from ...errors import KamiyoError
from .base import Analyzer

ENTRY_POINT_GROUP = "kamiyo.analyzers"

# The built-in analyzers, as `module:Class` (relative to this package), imported lazily by load_registry.
BUILTINS: tuple[str, ...] = (
    ".approvals:ApprovalDrain",
    ".exploit_contract:ExploitContract",
    ".flashloan:FlashLoan",
    ".outflow:LargeOutflow",
    ".privileged:PrivilegedChange",
    ".reentrancy:Reentrancy",
    ".reserves:ReserveManipulation",
    ".shares:ShareInflation",
    ".mints:UnbackedMint",
)

_log = log.get("kamiyo.analyzers")


class AnalyzerRegistryError(KamiyoError):
    """The set of analyzers cannot be assembled: a duplicate id, or a built-in that does not import."""


def load_registry(include_plugins: bool = True) -> dict[str, type[Analyzer]]:
    """Every known analyzer class by id: the built-ins, then (unless told not to) the installed plugins."""
    registry: dict[str, type[Analyzer]] = {}
    origins: dict[str, str] = {}
    for spec in BUILTINS:
        cls = _import_builtin(spec)
        _add(registry, origins, cls, f"built-in {_qualified(cls)}")
    if include_plugins:
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            cls = _load_plugin(entry_point)
            if cls is not None:
                _add(registry, origins, cls, f"{_qualified(cls)} from {_describe(entry_point)}")
    return registry


def analyzer_settings(registry: Mapping[str, type[Analyzer]], tables: Mapping[str, Any], *,
                      every: bool = False) -> dict[str, BaseModel]:
    """Validate `[analyzers.<id>]` tables against their analyzer's `Settings`; the models by id.

    Only the tables given are validated unless `every`, when each registered analyzer gets its model (an absent
    table is its defaults, so a required setting left out is a problem). Raises one pydantic ValidationError
    listing every problem at once, located at ("analyzers", id, key…) so the config reports its key path.
    """
    known = ", ".join(sorted(registry)) or "none"
    errors: list[dict[str, Any]] = []
    models: dict[str, BaseModel] = {}
    for analyzer_id, table in tables.items():
        if analyzer_id not in registry:
            errors.append(line_error(("analyzers", analyzer_id), f"no analyzer has this id (known: {known})", table))
    for analyzer_id, cls in registry.items():
        if analyzer_id not in tables and not every:
            continue
        try:
            models[analyzer_id] = cls.Settings.model_validate(tables.get(analyzer_id, {}))
        except ValidationError as exc:
            errors.extend(line_errors(exc, ("analyzers", analyzer_id)))
    if errors:
        raise ValidationError.from_exception_data("analyzers", errors)
    return models


def effective_settings(registry: Mapping[str, type[Analyzer]], tables: Mapping[str, Any]) -> dict[str, BaseModel]:
    """Every registered analyzer's settings: its table, else its defaults. A problem (a table for an analyzer not
    in `registry`, a required setting left out) is a ConfigError with every key path."""
    try:
        return analyzer_settings(registry, tables, every=True)
    except ValidationError as exc:
        raise ConfigError("[analyzers]", _problems(exc)) from exc


def is_builtin(cls: type) -> bool:
    return any(importlib.util.resolve_name(module, __package__) == cls.__module__ and attr == cls.__qualname__
               for module, _, attr in (spec.partition(":") for spec in BUILTINS))


def _import_builtin(spec: str) -> type[Analyzer]:
    module_name, _, attr = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name, __package__), attr)
    except Exception as exc:  # an AnalyzerDefinitionError at class definition arrives here too
        raise AnalyzerRegistryError(f"built-in analyzer {spec} cannot be loaded: {type(exc).__name__}: {exc}",
                                    analyzer=spec) from exc
    if not _is_analyzer(cls):
        raise AnalyzerRegistryError(f"built-in analyzer {spec} is not an Analyzer subclass", analyzer=spec)
    return cls


def _load_plugin(entry_point: importlib.metadata.EntryPoint) -> type[Analyzer] | None:
    try:
        obj = entry_point.load()
    except Exception as exc:  # someone else's code: whatever it raises, skip it and say why
        _plugin_failed(entry_point, f"cannot be loaded: {type(exc).__name__}: {exc}")
        return None
    if not _is_analyzer(obj):
        _plugin_failed(entry_point, f"{obj!r} is not an Analyzer subclass")
        return None
    return obj


def _plugin_failed(entry_point: importlib.metadata.EntryPoint, error: str) -> None:
    _log.error("analyzers.plugin_failed", entry_point=entry_point.name, value=entry_point.value,
               dist=_dist_name(entry_point), error=error)


def _add(registry: dict, origins: dict, cls: type[Analyzer], origin: str) -> None:
    analyzer_id = cls.info.id
    if analyzer_id in registry:
        if registry[analyzer_id] is cls:
            return  # the same class offered twice (say, two entry points naming it) is no conflict
        raise AnalyzerRegistryError(f"two analyzers have the id {analyzer_id!r}: {origins[analyzer_id]} and {origin}",
                                    analyzer=analyzer_id)
    registry[analyzer_id] = cls
    origins[analyzer_id] = origin


def _is_analyzer(obj: object) -> bool:
    return isinstance(obj, type) and issubclass(obj, Analyzer) and obj is not Analyzer


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _dist_name(entry_point: importlib.metadata.EntryPoint) -> str | None:
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return None
    return f"{dist.metadata['Name']} {dist.version}"


def _describe(entry_point: importlib.metadata.EntryPoint) -> str:
    dist = _dist_name(entry_point)
    return f"entry point {entry_point.name!r}" + (f" of {dist}" if dist else "") + f" ({entry_point.value})"
