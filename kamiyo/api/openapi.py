"""The OpenAPI 3.1 document of the API, as a Python dict, served at /v1/openapi.json to anyone.

The parameter and body schemas say what the handlers accept (patterns, bounds, RFC 3339 times), so a request the
document forbids is refused and one it allows is not refused as malformed; tests/api hold it to that with a
fuzzer. Three things it does not say, on purpose: a cursor is valid only when this server made it, and which
chains and channels this server has configured. The document is public and the configuration is not: channel
names can name customers. A key with the watchlists scope lists the channels at GET /v1/channels; an entry or a
channel the server does not know is a 400 that says what it knows.
"""

from __future__ import annotations

from typing import Any

from ..findings import ACTIVE, RETRACTED, FindingType, Severity
from .errors import CODES
from .keys import SCOPES, TIERS
from .params import DEFAULT_LIMIT, MAX_CURSOR, MAX_INT, MAX_LIMIT
from .routes.lineage import GRAPH_FORMATS
from .routes.watchlists import MAX_ENTRY

VERSION = "1.0.0"
_NOCTRL = "\\u0000-\\u001f\\u007f-\\u009f"  # control characters, refused everywhere
_TEXT = f"^[^{_NOCTRL}]*$"
_NOT_BLANK = f"^[^{_NOCTRL}]*[^\\s{_NOCTRL}][^{_NOCTRL}]*$"
_SPACE = f"[^\\S{_NOCTRL}]*"  # whitespace that is not a control character
_ADDRESS = "^0x[0-9a-fA-F]{40}$"
_SLUG = "[a-z0-9][a-z0-9-]{0,62}"  # a chain's name in the configuration
SEVERITIES = [s.value for s in Severity]

JsonSchema = dict[str, Any]


def ref(name: str) -> JsonSchema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: JsonSchema) -> JsonSchema:
    return {**schema, "type": [schema["type"], "null"]}


def _obj(properties: dict[str, JsonSchema], optional: tuple[str, ...] = (), extra: bool = False) -> JsonSchema:
    return {"type": "object", "properties": properties,
            "required": [name for name in properties if name not in optional], "additionalProperties": extra}


STRING, INTEGER, NUMBER, BOOLEAN = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}
MOMENT = {"type": "string", "format": "date-time"}
ANY_OBJECT = {"type": "object"}


def _strings(item: JsonSchema = STRING) -> JsonSchema:
    return {"type": "array", "items": item}


# ---- schemas of what is answered ------------------------------------------------------------------------------

def _response_schemas() -> dict[str, JsonSchema]:
    address = _obj({"role": _nullable(STRING), "chain_id": _nullable(INTEGER), "address": STRING}, extra=True)
    summary = {
        "id": STRING, "kind": {"type": "string", "enum": ["incident", "advisory"]}, "protocol": STRING,
        "date": _nullable({"type": "string", "format": "date"}), "chains": _strings(),
        "loss_usd": _nullable(NUMBER), "classification": _nullable(STRING),
        "addresses": {"type": "array", "items": ref("IncidentAddress")}, "tx_hashes": _strings(),
        "sources": {"type": "array", "items": _obj({"source": STRING, "ref": STRING})},
        "advisories": _strings(),
    }
    record = {
        "source": STRING, "ref": STRING, "kind": STRING, "protocol": STRING,
        "date": _nullable({"type": "string", "format": "date"}), "chains": _strings(),
        "loss_usd": _nullable(NUMBER), "loss_text": _nullable(STRING), "classification": _nullable(STRING),
        "technique": _nullable(STRING), "addresses": {"type": "array", "items": ref("IncidentAddress")},
        "tx_hashes": _strings(), "references": _strings(), "first_seen": MOMENT, "last_seen": MOMENT,
        "raw": {"description": "the record as its source published it"},
    }
    detail = {**summary, "loss_text": _nullable(STRING), "technique": _nullable(STRING), "references": _strings(),
              "why": _strings(), "updated_at": MOMENT, "records": {"type": "array", "items": ref("FeedRecord")}}
    placed = {"chain": _nullable(STRING), "chain_id": INTEGER, "address": STRING, "block": INTEGER,
              "timestamp": _nullable(INTEGER)}
    quotas = {name: ({"type": "integer"} if name == "delay_seconds" else _nullable(INTEGER))
              for name in ("requests_per_day", "requests_per_minute", "watchlists", "webhooks", "delay_seconds")}
    return {
        "Error": _obj({
            "error": {"type": "string", "enum": list(CODES)}, "detail": STRING,
            "parameter": {"type": "string", "description": "the parameter at fault (invalid_parameter)"},
            "problems": {"type": "array", "description": "every problem with a body (invalid_body)",
                         "items": _obj({"path": STRING, "message": STRING})},
            "retry_after": {"type": "integer", "description": "seconds, as in Retry-After (rate_limited)"},
        }, optional=("parameter", "problems", "retry_after")),
        "Finding": _obj({
            "id": {"type": "string", "description": "the fingerprint: stable, the dedup key everywhere"},
            "kind": STRING, "severity": {"type": "string", "enum": SEVERITIES},
            "type": {"type": "string", "enum": [t.value for t in FindingType]}, "chain_id": INTEGER,
            "subject": STRING, "block": INTEGER, "tx_hash": _nullable(STRING),
            "status": {"type": "string", "enum": [ACTIVE, RETRACTED]},
            "labels": {"type": "array", "description": "Forta-style labels on addresses"},
            "evidence": ANY_OBJECT, "created_at": MOMENT}),
        "FindingPage": _obj({"findings": {"type": "array", "items": ref("Finding")},
                             "next_cursor": _nullable(STRING)}),
        "FindingOne": _obj({"finding": ref("Finding")}),
        "IncidentAddress": address,
        "IncidentSummary": _obj(summary),
        "FeedRecord": _obj(record),
        "IncidentPage": _obj({"incidents": {"type": "array", "items": ref("IncidentSummary")},
                              "next_cursor": _nullable(STRING)}),
        "IncidentOne": _obj({"incident": _obj(detail)}),
        "Deployment": _obj({
            "chain_id": INTEGER, "address": STRING, "block": INTEGER, "timestamp": _nullable(INTEGER),
            "tx_hash": STRING, "creator": STRING, "deployer": STRING, "origin": _nullable(STRING),
            "internal": BOOLEAN, "kind": STRING, "implementation": _nullable(STRING), "code_hash": STRING,
            "size": INTEGER, "code_class": {"type": "string", "description": "the exact-clone class (skeleton hash)"}}),
        "DeploymentPage": _obj({"deployments": {"type": "array", "items": ref("Deployment")},
                                "next_cursor": _nullable(STRING)}),
        "Forks": _obj({
            "subject": _obj({"chain": _nullable(STRING), "chain_id": INTEGER, "address": STRING, "kind": STRING,
                             "family": STRING}),
            "related": {"type": "array", "items": _obj({
                "chain": _nullable(STRING), "chain_id": _nullable(INTEGER), "address": STRING,
                "relation": {"type": "string", "enum": ["identical", "clone", "fork", "proxy", "family"]},
                "similarity": _nullable(NUMBER), "label": STRING}, optional=("label",))},
            "total": INTEGER, "schema_version": INTEGER}),
        "Family": _obj({"id": STRING, "classes": _strings(), "deployments": INTEGER, "known": INTEGER,
                        "size": INTEGER, "chains": _strings(), "first": {"oneOf": [{"type": "null"}, _obj(placed)]}}),
        "FamilyPage": _obj({"families": {"type": "array", "items": ref("Family")}, "next_cursor": _nullable(STRING)}),
        "Sources": _obj({
            "sources": {"type": "array", "items": _obj({
                "name": STRING, "type": STRING, "records": INTEGER, "incidents": INTEGER,
                "last_success": _nullable(MOMENT), "last_error": _nullable(STRING),
                "last_error_at": _nullable(MOMENT)})},
            "incidents": _obj({"total": INTEGER, "single_source": INTEGER})}),
        "Watchlist": _obj({"id": STRING, "name": STRING, "entries": _strings(), "kinds": _strings(),
                           "min_severity": {"type": "string", "enum": SEVERITIES}, "channels": _strings(),
                           "created_at": MOMENT}),
        "WatchlistOne": _obj({"watchlist": ref("Watchlist")}),
        "WatchlistList": _obj({"watchlists": {"type": "array", "items": ref("Watchlist")}}),
        "Channels": _obj({"channels": {"type": "array", "items": _obj({
            "name": STRING, "type": STRING, "min_severity": {"type": "string", "enum": SEVERITIES},
            "kinds": _strings(), "watchlists_only": BOOLEAN,
            "owned": {"type": "boolean", "description": "the key's own webhook (else a channel granted to it)"}})}}),
        "Webhook": _obj({"id": STRING, "name": STRING, "url": STRING, "created_at": MOMENT}),
        "WebhookOne": _obj({"webhook": ref("Webhook")}),
        "WebhookMade": _obj({"webhook": ref("Webhook"), "secret": {
            "type": "string", "description": "signs every delivery (X-Kamiyo-Signature); shown this once"}}),
        "WebhookList": _obj({"webhooks": {"type": "array", "items": ref("Webhook")}}),
        "WebhookTest": _obj({"delivered": BOOLEAN, "status": _nullable(INTEGER), "detail": STRING}),
        "Suppression": _obj({"id": STRING, "fingerprint": _nullable(STRING), "kind": _nullable(STRING),
                             "address": _nullable(STRING), "reason": STRING, "created_at": MOMENT}),
        "SuppressionOne": _obj({"suppression": ref("Suppression")}),
        "SuppressionList": _obj({"suppressions": {"type": "array", "items": ref("Suppression")}}),
        "CallingKey": _obj({"key": _obj({
            "id": STRING, "name": STRING, "tier": {"type": "string", "enum": list(TIERS)},
            "scopes": _strings({"type": "string", "enum": list(SCOPES)}), "quotas": _obj(quotas),
            "created_at": MOMENT, "revoked_at": _nullable(MOMENT)})}),
        "Health": _obj({"status": {"type": "string", "enum": ["ok"]}}),
        "Ready": _obj({"status": {"type": "string", "enum": ["ready"]}, "checks": ref("Checks")}),
        "NotReady": _obj({"error": {"type": "string", "enum": ["not_ready"]}, "detail": STRING,
                          "status": {"type": "string", "enum": ["not_ready"]}, "checks": ref("Checks")}),
        "Checks": {"type": "object", "description": "per check (database, and the daemon's when it runs the API)",
                   "additionalProperties": {"type": "object", "required": ["ok"],
                                            "properties": {"ok": BOOLEAN, "error": STRING}}},
    }


def _webhook_request() -> JsonSchema:
    return {
        "type": "object", "additionalProperties": False, "required": ["name", "url"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": _NOT_BLANK,
                     "description": "what its watchlists call it in `channels`"},
            "url": {"type": "string", "format": "uri", "maxLength": 2000, "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://",
                    "description": "where deliveries are POSTed; it must resolve to addresses the server may "
                                   "reach (public ones, unless its operator allows more)"},
        },
    }


def _suppression_request() -> JsonSchema:
    fingerprint = {"type": "string", "pattern": "^0x[0-9a-fA-F]{64}$", "description": "one finding's id"}
    kind = {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,39}$", "description": "an analyzer's id"}
    address = {"type": "string", "pattern": _ADDRESS, "description": "what its findings are about, or name"}
    reason = {"type": "string", "minLength": 1, "maxLength": 500, "pattern": _NOT_BLANK}
    by_fingerprint = {"type": "object", "additionalProperties": False, "required": ["fingerprint", "reason"],
                      "properties": {"fingerprint": fingerprint, "reason": reason}}
    by_address = {"type": "object", "additionalProperties": False, "required": ["kind", "address", "reason"],
                  "properties": {"kind": kind, "address": address, "reason": reason}}
    return {"oneOf": [by_fingerprint, by_address],
            "description": "one finding by fingerprint, or an analyzer's findings about (or naming) one address"}


def _watchlist_request() -> JsonSchema:
    contract = f"{_SPACE}(?:[1-9][0-9]{{0,17}}|{_SLUG}):0x[0-9a-fA-F]{{40}}{_SPACE}"
    word = f"[^\\s{_NOCTRL}]"
    three = f"(?=(?:[^{_NOCTRL}]*?{word}){{3}}|[^{_NOCTRL}]*?{word}\\s+{word})"  # parse_entry's "3 characters"
    protocol = f"{_SPACE}protocol:{three}[^{_NOCTRL}]*"
    return {
        "type": "object", "additionalProperties": False, "required": ["name", "entries"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": _NOT_BLANK},
            "entries": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {
                "type": "string", "maxLength": MAX_ENTRY, "pattern": f"^(?:{contract}|{protocol})$",
                "description": "CHAIN:ADDRESS (a chain id, or the name of a chain the server follows) or "
                               "protocol:NAME"}},
            "kinds": {"type": "array", "default": [], "items": {"type": "string", "minLength": 1, "maxLength": 40,
                                                                 "pattern": _TEXT}},
            "min_severity": {"type": "string", "enum": SEVERITIES, "default": "info"},
            "channels": {"type": "array", "default": [], "items": {
                "type": "string", "minLength": 1, "maxLength": 100, "pattern": _TEXT,
                "description": "one of the key's webhooks, or a configured channel granted to it (GET "
                               "/v1/channels)"}},
        },
    }


# ---- parameters and responses ---------------------------------------------------------------------------------

def _query(name: str, schema: JsonSchema, description: str, required: bool = False) -> JsonSchema:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


def _path(name: str, schema: JsonSchema, description: str) -> JsonSchema:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema}


BIG = {"type": "integer", "minimum": 0, "maximum": MAX_INT}
CHAIN_ID = {"type": "integer", "minimum": 1, "maximum": MAX_INT}
WHEN = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]}
LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
               "how many to answer at most")
CURSOR = _query("cursor", {"type": "string", "minLength": 1, "maxLength": MAX_CURSOR, "pattern": "^[A-Za-z0-9_-]+$"},
                "next_cursor of the previous page, as it was given")


def _error(description: str, headers: dict | None = None) -> JsonSchema:
    response = {"description": description, "content": {"application/json": {"schema": ref("Error")}}}
    if headers:
        response["headers"] = headers
    return response


ERRORS = {
    "BadRequest": _error("a parameter or the body cannot be used (error: invalid_parameter or invalid_body)"),
    "Unauthorized": _error("no API key, or an unknown or revoked one"),
    "Forbidden": _error("the key lacks the scope (error: forbidden), or its tier's quota is used (error: quota)"),
    "NotFound": _error("no such thing, or not this key's"),
    "TooManyRequests": _error("the key's requests per minute or per day are used", headers={
        "Retry-After": {"description": "seconds until a request is admitted again", "schema": INTEGER}}),
    "Unavailable": _error("the database does not answer"),
    "Default": _error("any other refusal, in the same shape (e.g. 405, 413, 500)"),
}


def _json(schema_name: str, description: str) -> JsonSchema:
    return {"description": description, "content": {"application/json": {"schema": ref(schema_name)}}}


def _op(op_id: str, summary: str, ok: dict[str, JsonSchema], parameters: list | None = None, *,
        secured: bool = True, scope: str | None = None, tag: str = "data") -> JsonSchema:
    responses = dict(ok)
    if parameters:
        responses.setdefault("400", {"$ref": "#/components/responses/BadRequest"})
    common = {"503": "Unavailable", "default": "Default"}
    if secured:
        common.update({"401": "Unauthorized", "403": "Forbidden", "429": "TooManyRequests"})
    for status, name in common.items():  # what an operation says itself comes first
        responses.setdefault(status, {"$ref": f"#/components/responses/{name}"})
    operation = {"operationId": op_id, "summary": summary, "tags": [tag], "parameters": parameters or [],
                 "responses": responses}
    if not secured:
        operation["security"] = []
    if scope is not None:
        operation["description"] = f"Needs a key with the `{scope}` scope (or `admin`)."
    return operation


NOT_FOUND = {"404": {"$ref": "#/components/responses/NotFound"}}
WEBHOOK_ID = _path("id", {"type": "string", "minLength": 1, "maxLength": 40}, "e.g. wh_…")
READ_ONLY = {"405": _error("this server is read-only (error: read_only)")}


def _paths() -> dict:
    since = _query("since", WHEN, "created at or after this moment (a date: its midnight UTC)")
    chain = _query("chain", CHAIN_ID, "a chain id")
    findings = [chain, _query("kind", {"type": "string", "minLength": 1, "maxLength": 40, "pattern": _TEXT},
                              "e.g. fork-detected"),
                _query("min_severity", {"type": "string", "enum": SEVERITIES}, "this severity or higher"),
                _query("type", {"type": "string", "enum": [t.value for t in FindingType]}, "the finding's type"),
                _query("status", {"type": "string", "enum": [ACTIVE, RETRACTED, "all"], "default": ACTIVE},
                       "retracted: taken back by a reorg"),
                since, _query("until", WHEN, "created before this moment"), LIMIT, CURSOR]
    incidents = [_query("since", WHEN, "on or after this day (a date-time: its UTC day)"),
                 _query("chain", {"type": "string", "minLength": 1, "maxLength": 100, "pattern": _TEXT},
                        "a chain id, or a chain's name (the registry's, or as a feed wrote it)"), LIMIT, CURSOR]
    deployments = [_query("chain", CHAIN_ID, "a chain id", required=True),
                   _query("from_block", BIG, "at or after this block"),
                   _query("to_block", BIG, "at or before this block"), LIMIT, CURSOR]
    graph_content = {media: {"schema": {"type": "string"}} for _fmt, media in GRAPH_FORMATS.values()}
    graph_content["application/json"] = {"schema": {"type": "object", "description": "networkx node-link"}}
    graph_content["image/png"] = {"schema": {"type": "string", "contentMediaType": "image/png"}}
    return {
        "/healthz": {"get": _op("healthz", "the process answers", {"200": _json("Health", "up")}, secured=False,
                                tag="service")},
        "/readyz": {"get": _op("readyz", "whether the API can serve: the database, and the daemon's own check",
                               {"200": _json("Ready", "ready"), "503": _json("NotReady", "not ready, and why")},
                               secured=False, tag="service")},
        "/metrics": {"get": _op("metrics", "Prometheus metrics", {"200": {
            "description": "the text exposition format", "content": {"text/plain": {"schema": STRING}}}},
            scope="admin", tag="service")},
        "/v1/openapi.json": {"get": _op("getOpenApiDocument", "this document", {"200": {
            "description": "OpenAPI 3.1", "content": {"application/json": {"schema": ANY_OBJECT}}}},
            secured=False, tag="service")},
        "/v1/me": {"get": _op("getCallingKey", "the calling key: tier, scopes, quotas",
                              {"200": _json("CallingKey", "the key")}, tag="service")},
        "/v1/findings": {"get": _op("listFindings", "findings, oldest first, in pages",
                                    {"200": _json("FindingPage", "a page")}, findings, scope="read")},
        "/v1/findings/{id}": {"get": _op("getFinding", "one finding by its id (fingerprint)", {
            "200": _json("FindingOne", "the finding"), **NOT_FOUND},
            [_path("id", {"type": "string", "pattern": "^0x[0-9a-fA-F]{64}$"}, "the fingerprint")], scope="read")},
        "/v1/incidents": {"get": _op("listIncidents", "incidents merged from the feeds, oldest first",
                                     {"200": _json("IncidentPage", "a page")}, incidents, scope="read")},
        "/v1/incidents/{id}": {"get": _op("getIncident", "one incident, its records, and why they are one", {
            "200": _json("IncidentOne", "the incident"), **NOT_FOUND},
            [_path("id", {"type": "string", "minLength": 1, "maxLength": 40}, "e.g. inc-14e4d12f37ab599d")],
            scope="read")},
        "/v1/deployments": {"get": _op("listDeployments", "contracts deployed on one chain, by block",
                                       {"200": _json("DeploymentPage", "a page")}, deployments, scope="read")},
        "/v1/contracts/{chain}/{address}/forks": {"get": _op(
            "getContractForks", "a contract's family on every chain: copies, clones, forks, proxies",
            {"200": _json("Forks", "the contract and what is related to it"), **NOT_FOUND},
            [_path("chain", CHAIN_ID, "a chain id"),
             _path("address", {"type": "string", "pattern": _ADDRESS}, "the contract"), LIMIT], scope="read")},
        "/v1/families": {"get": _op("listFamilies", "the live fork families, by id", {
            "200": _json("FamilyPage", "a page")},
            [_query("min_size", {"type": "integer", "minimum": 1, "maximum": MAX_INT, "default": 1},
                    "at least this many deployments and imported codes"), LIMIT, CURSOR], scope="read")},
        "/v1/graph": {"get": _op("getForkGraph", "the live fork graph", {
            "200": {"description": "the graph in the format asked for", "content": graph_content},
            "501": _error("png needs matplotlib on the server (error: unsupported)")},
            [_query("format", {"type": "string", "enum": list(GRAPH_FORMATS), "default": "json"},
                    "json is networkx node-link; text is one line per family")], scope="read")},
        "/v1/stream": {"get": _op(
            "streamFindings", "a WebSocket of findings as they commit; frames {type: events, cursor, events: "
            "[{cursor, event, finding}]}; resume with ?cursor=N; a too-slow reader is closed (1013) and told its cursor",
            {"101": {"description": "switching to the WebSocket protocol"},
             "426": _error("a plain HTTP request: this route needs Upgrade: websocket (error: upgrade_required)")},
            [chain, _query("kind", {"type": "string", "minLength": 1, "maxLength": 40, "pattern": _TEXT},
                           "only findings of this kind"),
             _query("min_severity", {"type": "string", "enum": SEVERITIES}, "this severity or higher"),
             _query("watchlists", {"type": "string", "enum": ["mine"]}, "only what the key's watchlists concern"),
             _query("cursor", BIG, "resume after this event (the last frame's cursor)")],
            scope="read")},
        "/v1/sources": {"get": _op("listSources", "the configured feeds' health",
                                   {"200": _json("Sources", "every configured feed")}, scope="read")},
        "/v1/watchlists": {
            "get": _op("listWatchlists", "the key's watchlists", {"200": _json("WatchlistList", "all of them")},
                       scope="watchlists", tag="watchlists"),
            "post": {**_op("createWatchlist", "make a watchlist", {
                "201": {**_json("WatchlistOne", "made"), "headers": {"Location": {"schema": STRING}}},
                "400": {"$ref": "#/components/responses/BadRequest"}, **READ_ONLY,
                "409": _error("the key has a watchlist of that name (error: conflict)")},
                scope="watchlists", tag="watchlists"),
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": ref("WatchlistRequest")}}}},
        },
        "/v1/channels": {"get": _op("listChannels", "the channels the key's watchlists may name",
                                    {"200": _json("Channels", "its webhooks and the configured channels granted "
                                                              "to it (no URL, no secret)")},
                                    scope="watchlists", tag="watchlists")},
        "/v1/webhooks": {
            "get": _op("listWebhooks", "the key's webhooks", {"200": _json("WebhookList", "all of them")},
                       scope="watchlists", tag="watchlists"),
            "post": {**_op("createWebhook", "register a webhook for the key's watchlists", {
                "201": {**_json("WebhookMade", "made, with its secret"),
                        "headers": {"Location": {"schema": STRING}}},
                "400": {"$ref": "#/components/responses/BadRequest"}, **READ_ONLY,
                "409": _error("the key has a webhook of that name (error: conflict)")},
                scope="watchlists", tag="watchlists"),
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": ref("WebhookRequest")}}}},
        },
        "/v1/webhooks/{id}": {
            "get": _op("getWebhook", "one of the key's webhooks", {
                "200": _json("WebhookOne", "the webhook"), **NOT_FOUND}, [WEBHOOK_ID],
                scope="watchlists", tag="watchlists"),
            "delete": _op("deleteWebhook", "remove one of the key's webhooks (its pending deliveries become dead "
                                           "letters)", {"204": {"description": "removed"}, **NOT_FOUND,
                                                        **READ_ONLY}, [WEBHOOK_ID],
                          scope="watchlists", tag="watchlists"),
        },
        "/v1/suppressions": {
            "get": _op("listSuppressions", "the key's suppressions", {"200": _json("SuppressionList", "all")},
                       scope="watchlists", tag="watchlists"),
            "post": {**_op("createSuppression", "silence known noise on the key's own webhooks", {
                "201": {**_json("SuppressionOne", "made"), "headers": {"Location": {"schema": STRING}}},
                "400": {"$ref": "#/components/responses/BadRequest"}, **READ_ONLY},
                scope="watchlists", tag="watchlists"),
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": ref("SuppressionRequest")}}}},
        },
        "/v1/suppressions/{id}": {
            "delete": _op("deleteSuppression", "remove one of the key's suppressions", {
                "204": {"description": "removed"}, **NOT_FOUND, **READ_ONLY},
                [_path("id", {"type": "string", "minLength": 1, "maxLength": 40}, "e.g. sup_…")],
                scope="watchlists", tag="watchlists"),
        },
        "/v1/webhooks/{id}/test": {
            "post": _op("testWebhook", "send one signed test delivery now", {
                "200": _json("WebhookTest", "what the receiver answered"), **NOT_FOUND, **READ_ONLY},
                [WEBHOOK_ID], scope="watchlists", tag="watchlists")},
        "/v1/watchlists/{id}": {
            "get": _op("getWatchlist", "one of the key's watchlists", {
                "200": _json("WatchlistOne", "the watchlist"), **NOT_FOUND},
                [_path("id", {"type": "string", "minLength": 1, "maxLength": 40}, "e.g. wl_…")],
                scope="watchlists", tag="watchlists"),
            "delete": _op("deleteWatchlist", "remove one of the key's watchlists", {
                "204": {"description": "removed"}, **NOT_FOUND, **READ_ONLY},
                [_path("id", {"type": "string", "minLength": 1, "maxLength": 40}, "e.g. wl_…")],
                scope="watchlists", tag="watchlists"),
        },
    }


def document() -> dict:
    quotas = "; ".join(
        f"{tier}: {q.requests_per_minute or 'unlimited'}/minute, {q.requests_per_day or 'unlimited'}/day, "
        f"{'unlimited' if q.watchlists is None else q.watchlists} watchlist(s), "
        f"{'unlimited' if q.webhooks is None else q.webhooks} webhook(s), "
        f"data {'in real time' if not q.delay_seconds else f'delayed {q.delay_seconds // 3600} h'}"
        for tier, q in TIERS.items())
    return {
        "openapi": "3.1.0",
        "info": {"title": "Kamiyo API", "version": VERSION, "description": (
            "On-chain security monitoring: findings, incidents, deployments and their fork families. Every error "
            "is {\"error\": code, \"detail\": line}. Lists are paged with opaque cursors (keyset). Tiers: "
            f"{quotas}.")},
        "paths": _paths(),
        "components": {
            "schemas": {**_response_schemas(), "WatchlistRequest": _watchlist_request(),
                        "WebhookRequest": _webhook_request(), "SuppressionRequest": _suppression_request()},
            "responses": ERRORS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer kmy_…"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
        "security": [{"bearer": []}, {"apiKey": []}],
    }
