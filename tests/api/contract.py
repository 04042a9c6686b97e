"""Holding real responses to the OpenAPI document: the operation a request matched, the status it answered (one the
operation lists, or `default`), the content type (one the response lists) and, for JSON, the body against the
response's schema (JSON Schema 2020-12, formats checked). Every request the API tests make goes through `Client`,
so every response they see is checked this way.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

BASE = "urn:kamiyo-openapi"


class ContractBroken(AssertionError):
    """A response the document does not describe."""


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


class Contract:
    def __init__(self, document: dict) -> None:
        self.document = document
        self.registry = Registry().with_resource(BASE, Resource(contents=document, specification=DRAFT202012))
        self.templates = [(re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path)
                          for path in document["paths"]]

    def operation(self, method: str, path: str) -> tuple[str, dict] | None:
        for pattern, template in self.templates:
            if pattern.match(path):
                found = self.document["paths"][template].get(method.lower())
                return (template, found) if found is not None else None
        return None

    def _response(self, template: str, method: str, status: int) -> tuple[str, dict]:
        """(JSON pointer of the response object, the response object) for a status, refs followed."""
        responses = self.document["paths"][template][method.lower()]["responses"]
        key = str(status) if str(status) in responses else "default"
        if key not in responses or (key == "default" and status < 400):  # a success is always listed by its own
            raise ContractBroken(f"{method} {template}: status {status} is not documented")
        pointer = "#/" + _pointer("paths", template, method.lower(), "responses", key)
        response = responses[key]
        while "$ref" in response:
            pointer = response["$ref"]
            target = self.document
            for part in pointer.removeprefix("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            response = target
        return pointer, response

    def check(self, method: str, path: str, status: int, content_type: str, body: bytes) -> None:
        found = self.operation(method, path)
        if found is None:
            if status in (404, 405):  # no such route: the router's answer, still in the error shape
                self.validate_json("#/components/schemas/Error", json.loads(body), f"{method} {path}")
                return
            raise ContractBroken(f"{method} {path} answered {status} but is in no path of the document")
        template, _operation = found
        pointer, response = self._response(template, method, status)
        content = response.get("content")
        if not content:
            if body and method != "HEAD":
                raise ContractBroken(f"{method} {template} {status}: a body where none is documented")
            return
        media = content_type.split(";")[0].strip()
        if media not in content:
            raise ContractBroken(f"{method} {template} {status}: content type {media} not among {sorted(content)}")
        if media == "application/json" and method != "HEAD":
            self.validate_json(f"{pointer}/content/{_pointer(media)}/schema", json.loads(body),
                               f"{method} {template} {status}")

    def validate_json(self, pointer: str, data, label: str) -> None:
        validator = Draft202012Validator({"$ref": BASE + pointer}, registry=self.registry,
                                         format_checker=Draft202012Validator.FORMAT_CHECKER)
        try:
            validator.validate(data)
        except ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
            raise ContractBroken(f"{label}: the body breaks the document at {where}: {exc.message}") from None


@dataclass
class Answer:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


class Client:
    """An aiohttp test client that checks every answer against the contract, with a default key."""

    def __init__(self, client: TestClient, contract: Contract, secret: str | None = None) -> None:
        self.client, self.contract, self.secret = client, contract, secret

    def with_key(self, secret: str | None) -> Client:
        return Client(self.client, self.contract, secret)

    async def request(self, method: str, path: str, *, headers: dict | None = None, **kwargs) -> Answer:
        sent = {"Authorization": f"Bearer {self.secret}"} if self.secret else {}
        sent.update(headers or {})
        async with self.client.request(method, path, headers=sent, **kwargs) as response:
            body = await response.read()
            answer = Answer(response.status, dict(response.headers), body)
            self.contract.check(method, response.url.path, response.status,
                                response.headers.get("Content-Type", ""), body)
        if response.status >= 400 and method != "HEAD":
            error = answer.json()
            assert set(error) >= {"error", "detail"} and "\n" not in error["detail"], error
            assert "Traceback" not in answer.text
        return answer

    async def get(self, path: str, **kwargs) -> Answer:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs) -> Answer:
        return await self.request("POST", path, **kwargs)

    async def delete(self, path: str, **kwargs) -> Answer:
        return await self.request("DELETE", path, **kwargs)
