"""`kamiyo analyzers`: what each transaction analyzer finds, how sure it is, what it needs, and its settings.

Without --config it lists the built-ins and the installed plugins with their defaults; with one it also says which
are enabled and what each setting is there. It reads the configuration only to show it, never changes anything.
"""

from __future__ import annotations

import argparse
import enum
import json
import textwrap
from dataclasses import fields, is_dataclass
from typing import Any

from ..reports.table import render_table

_UNSET = object()


def cmd_analyzers(args: argparse.Namespace) -> int:
    from ..analyzers.tx.registry import effective_settings, load_registry

    registry = load_registry()
    effective = None
    if args.config is not None:
        from ..config import load

        effective = effective_settings(registry, load(args.config).analyzers)
    entries = [_entry(registry[analyzer_id], None if effective is None else effective[analyzer_id])
               for analyzer_id in sorted(registry)]
    if args.format == "json":
        print(json.dumps(entries, indent=2))
    else:
        print(_text(entries, configured=effective is not None), end="")
    return 0


def _entry(cls, model) -> dict[str, Any]:
    """One analyzer as data; `model` is its effective settings from a configuration, or None for defaults."""
    from ..analyzers.tx.registry import is_builtin

    info = cls.info
    values = model.model_dump(mode="json") if model is not None else {}
    settings = []
    for name, field in cls.Settings.model_fields.items():
        default = _UNSET if field.is_required() else _jsonable(field.get_default(call_default_factory=True))
        settings.append({
            "name": name, "type": _type_name(field.annotation), "constraints": _constraints(field.metadata),
            "required": default is _UNSET, "default": None if default is _UNSET else default,
            "description": field.description,
            **({"value": values[name]} if model is not None else {}),
        })
    enabled = values["enabled"] if model is not None else cls.Settings.model_fields["enabled"].get_default()
    return {
        "id": info.id, "title": info.title, "description": info.description, "severity": str(info.severity),
        "confidence": info.confidence, "needs_traces": info.needs_traces, "consumes": sorted(info.consumes),
        "class": f"{cls.__module__}.{cls.__qualname__}", "builtin": is_builtin(cls),
        "enabled": enabled, "configured": model is not None, "settings": settings,
    }


def _jsonable(value: Any) -> Any:
    """A default as the configuration would write it (an enum as its value, a tuple as a list)."""
    from pydantic_core import PydanticSerializationError, to_jsonable_python

    try:
        return to_jsonable_python(value)
    except PydanticSerializationError:  # a default with no JSON form: show it as Python would
        return repr(value)


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " | ".join(str(member.value) for member in annotation)
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _constraints(metadata: list) -> list[str]:
    out = []
    for item in metadata:
        if is_dataclass(item):  # annotated_types' Gt(gt=0), MinLen(min_length=1), …
            out.extend(f"{f.name}={getattr(item, f.name)!r}" for f in fields(item) if getattr(item, f.name) is not None)
        else:
            out.append(repr(item))
    return out


def _shown(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def _text(entries: list[dict], configured: bool) -> str:
    enabled_column = ["enabled"] if configured else []
    headers = ["id", "severity", "confidence", "needs traces", "consumes", *enabled_column, "title"]
    rows = [[e["id"], e["severity"], f"{e['confidence']:.2f}", "yes" if e["needs_traces"] else "no",
             ", ".join(e["consumes"]), *(["yes" if e["enabled"] else "no"] if configured else []), e["title"]]
            for e in entries]
    out = [render_table(headers, rows, right=(2,))]
    for e in entries:
        origin = "built-in" if e["builtin"] else f"plugin {e['class']}"
        out.append(f"\n{e['id']} — {e['title']} ({origin})\n")
        out.append(textwrap.fill(e["description"], width=100, initial_indent="  ", subsequent_indent="  ") + "\n")
        setting_headers = ["setting", "type", "default", *(["value"] if configured else []), "description"]
        setting_rows = [[s["name"], " ".join([s["type"], *s["constraints"]]),
                         "(required)" if s["required"] else _shown(s["default"]),
                         *([_shown(s["value"])] if configured else []), s["description"] or ""]
                        for s in e["settings"]]
        out.append(textwrap.indent(render_table(setting_headers, setting_rows), "  "))
    return "".join(out)


def register(sub) -> None:
    """Add `analyzers` to the `kamiyo` subparsers."""
    analyzers = sub.add_parser("analyzers", help="the transaction analyzers: built-ins and plugins, their settings")
    analyzers.add_argument("--format", choices=("text", "json"), default="text")
    # no $KAMIYO_CONFIG fallback: without --config the listing is of the defaults, whatever the environment holds
    analyzers.add_argument("--config", metavar="PATH",
                           help="also show which are enabled and their settings there (default: no configuration)")
    analyzers.set_defaults(func=cmd_analyzers)
