"""What the feed adapters share: a bounded JSON loader (the one place that decides what JSON is acceptable at
all), values and pydantic problems named in one line for an error message, all-or-nothing validation of a list
of records, and the address and transaction patterns found in prose."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TypeVar

from pydantic import BaseModel, ValidationError

from .model import FeedFormatError

MAX_DEPTH = 32  # feeds are a few levels deep; deeper is not a feed, and raw must survive json.dumps later
# An address is 40 hex digits not inside a longer run of word characters, so a tx hash is never read as one.
ADDRESS = re.compile(r"(?<![0-9a-zA-Z])0x[0-9a-fA-F]{40}(?![0-9a-zA-Z])")
TX_HASH = re.compile(r"(?<![0-9a-zA-Z])0x[0-9a-fA-F]{64}(?![0-9a-zA-Z])")
M = TypeVar("M", bound=BaseModel)


def load_json(payload: bytes, source: str, what: str) -> Any:
    """Bytes → JSON value, or `FeedFormatError`. Shared by the JSON feeds: the one place that decides what JSON
    is acceptable at all (UTF-8/16/32, finite numbers, at most `MAX_DEPTH` deep)."""
    if not payload.strip():
        raise FeedFormatError(f"{source}: {what} is empty", source=source)
    try:
        value = json.loads(payload, parse_float=_finite, parse_int=_integer, parse_constant=_no_constant)
    except RecursionError as exc:
        raise FeedFormatError(f"{source}: {what} is nested too deeply to be read", source=source) from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer past the digit limit, _finite
        raise FeedFormatError(f"{source}: {what} is not valid JSON: {exc}", source=source) from exc
    if _depth(value) > MAX_DEPTH:
        raise FeedFormatError(f"{source}: {what} is nested deeper than {MAX_DEPTH} levels", source=source)
    return value


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _integer(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > 309 or abs(value := int(text)) > sys.float_info.max:  # no double holds it: not an amount of anything
        raise ValueError(f"number {text[:20]}… ({digits} digits) is out of range")
    return value


def _no_constant(text: str) -> NoReturn:
    raise ValueError(f"{text} is not a JSON number")


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, depth)
            if depth <= MAX_DEPTH:  # past the limit the answer is known; do not walk a hostile tree further
                stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def describe(value: Any) -> str:
    """A JSON value named for an error message: its type, and a bounded glimpse of it."""
    kind = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")
    try:
        glimpse = repr(value)
    except ValueError:  # an integer too long to print
        glimpse = "…"
    return f"{kind} ({glimpse[:60]}{'…' if len(glimpse) > 60 else ''})"


def problem(exc: ValidationError) -> str:
    """The first thing pydantic found wrong, as `field: message (got …)`, plus how many more there are."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "record"
    text = f"{where}: {first['msg'].removeprefix('Value error, ')}"
    if first["type"] != "missing":
        text += f", got {describe(first.get('input'))}"
    return text + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")


def validated(items: Sequence[Any], model: type[M], source: str, noun: str,
              label_key: str) -> list[tuple[M, dict]]:
    """Every item validated as `model`, or a `FeedFormatError` naming the first bad one: all or nothing."""
    out = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise FeedFormatError(f"{source}: {noun} {index} must be an object, got {describe(item)}",
                                  source=source, index=index)
        try:
            out.append((model.model_validate(item), item))
        except ValidationError as exc:
            label = item.get(label_key)
            shown = f" ({label[:60]!r})" if isinstance(label, str) else ""
            raise FeedFormatError(f"{source}: {noun} {index}{shown}: {problem(exc)}", source=source,
                                  index=index) from exc
    return out
