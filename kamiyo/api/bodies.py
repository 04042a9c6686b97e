"""Request bodies, read the same way on every route that takes one: JSON, then a strict pydantic model (types
only; what the values may be is the route's to say), every problem listed at once with its path in the body.
And the refusal of a change on a read-only server (`kamiyo api`)."""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from .context import context
from .errors import BAD_BODY, READ_ONLY, ApiError

Model = TypeVar("Model", bound=BaseModel)


def path_of(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def refuse(problems: list[dict]) -> None:
    """400 invalid_body, listing every `{"path", "message"}`."""
    lines = "; ".join(f"{p['path']}: {p['message']}" for p in problems)
    raise ApiError(400, BAD_BODY, f"{len(problems)} problem(s): {lines}", problems=problems)


async def read_body(request: web.Request, model: type[Model]) -> Model:
    try:
        data = await request.json()
    except ValueError:
        raise ApiError(400, BAD_BODY, "the body is not JSON", problems=[]) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        refuse([{"path": path_of(e["loc"]), "message": e["msg"]} for e in exc.errors(include_url=False)])
        raise  # not reached: refuse raised


def writable(request: web.Request, what: str) -> None:
    if context(request).read_only:
        raise ApiError(405, READ_ONLY, f"this server is read-only (`kamiyo api`): change {what} through the "
                                       "daemon's API", headers={"Allow": "GET, HEAD"})
