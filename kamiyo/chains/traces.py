"""Call traces as analyzers see them: one `CallFrame` tree per transaction, from either tracing dialect.

`trace_block` (parity) answers a flat list ordered depth first, each entry placed by its `traceAddress`;
`debug_traceBlockByNumber` with the call tracer answers one nested frame per transaction. Both become the same
tree, so no analyzer knows which node it runs against. An entry that cannot be read makes that transaction's
trace None (the analyzers then see it as untraced) rather than a tree with a hole in it; this module must not
guess a frame.
"""

from __future__ import annotations

from .. import log
from ..analyzers.tx.base import CallFrame

_log = log.get("kamiyo.traces")
_PARITY_KINDS = {"call": "CALL", "delegatecall": "DELEGATECALL", "staticcall": "STATICCALL", "callcode": "CALLCODE"}


class _Unreadable(ValueError):
    pass


def _int(value: object) -> int:
    if value in (None, "", "0x"):
        return 0
    if not isinstance(value, str):
        raise _Unreadable(f"expected a hex quantity, got {value!r:.40}")
    try:
        return int(value, 16)
    except ValueError as exc:
        raise _Unreadable(f"expected a hex quantity, got {value!r:.40}") from exc


def _address(value: object) -> str:
    if not isinstance(value, str) or len(value) != 42 or not value.startswith("0x"):
        raise _Unreadable(f"expected an address, got {value!r:.60}")
    return value.lower()


def _hex(value: object) -> str:
    return value if isinstance(value, str) and value.startswith("0x") else "0x"


def from_call_tracer(frame: dict) -> CallFrame:
    """One call-tracer frame and its children; raises _Unreadable for a malformed one."""
    if not isinstance(frame, dict):
        raise _Unreadable("a frame is not an object")
    kind = str(frame.get("type", "")).upper()
    to = frame.get("to")
    error = frame.get("error")
    children = frame.get("calls") or []
    if not isinstance(children, list):
        raise _Unreadable("calls is not a list")
    return CallFrame(
        kind=kind, sender=_address(frame.get("from")),
        to=_address(to) if to else None,  # a creation that failed has no address
        value=_int(frame.get("value")), input=_hex(frame.get("input")),
        output=frame.get("output") if isinstance(frame.get("output"), str) else None,
        error=str(error) if error else None,
        calls=tuple(from_call_tracer(c) for c in children),
    )


def call_tracer_block(results: list) -> dict[str, CallFrame | None]:
    """tx hash -> trace for a `debug_traceBlockByNumber` answer."""
    out: dict[str, CallFrame | None] = {}
    for entry in results:
        if not isinstance(entry, dict) or not isinstance(entry.get("txHash"), str):
            continue
        tx = entry["txHash"].lower()
        try:
            out[tx] = from_call_tracer(entry.get("result"))
        except (_Unreadable, RecursionError) as exc:
            _log.warning("traces.unreadable", tx_hash=tx, dialect="callTracer", error=str(exc))
            out[tx] = None
    return out


def _parity_frame(entry: dict) -> tuple[CallFrame, list[int]]:
    action = entry.get("action") or {}
    result = entry.get("result") or {}
    address = entry.get("traceAddress")
    if not isinstance(action, dict) or not isinstance(address, list) or not all(isinstance(i, int) for i in address):
        raise _Unreadable("action or traceAddress malformed")
    kind, error = entry.get("type"), entry.get("error")
    error = str(error) if error else None
    if kind == "call":
        call_kind = _PARITY_KINDS.get(str(action.get("callType", "call")).lower())
        if call_kind is None:
            raise _Unreadable(f"unknown callType {action.get('callType')!r:.20}")
        frame = CallFrame(call_kind, _address(action.get("from")), _address(action.get("to")), _int(action.get("value")),
                          _hex(action.get("input")), result.get("output") if isinstance(result, dict) else None, error)
    elif kind == "create":
        created = result.get("address") if isinstance(result, dict) else None
        create_kind = "CREATE2" if str(action.get("creationMethod", "")).lower() == "create2" else "CREATE"
        frame = CallFrame(create_kind, _address(action.get("from")), _address(created) if created else None,
                          _int(action.get("value")), _hex(action.get("init")),
                          result.get("code") if isinstance(result, dict) else None, error)
    elif kind in ("suicide", "selfdestruct"):
        frame = CallFrame("SELFDESTRUCT", _address(action.get("address")), _address(action.get("refundAddress")),
                          _int(action.get("balance")), "0x", None, error)
    else:
        raise _Unreadable(f"unknown trace type {kind!r:.20}")
    return frame, address


def parity_block(traces: list) -> dict[str, CallFrame | None]:
    """tx hash -> trace for a `trace_block` answer: the flat, depth-first entries nested back by traceAddress."""
    by_tx: dict[str, list[dict]] = {}
    for entry in traces:
        if isinstance(entry, dict) and isinstance(entry.get("transactionHash"), str):
            by_tx.setdefault(entry["transactionHash"].lower(), []).append(entry)
    out: dict[str, CallFrame | None] = {}
    for tx, entries in by_tx.items():
        try:
            out[tx] = _nest([_parity_frame(e) for e in entries])
        except (_Unreadable, RecursionError) as exc:
            _log.warning("traces.unreadable", tx_hash=tx, dialect="parity", error=str(exc))
            out[tx] = None
    return out


def _nest(frames: list[tuple[CallFrame, list[int]]]) -> CallFrame:
    """Rebuild the tree: children are collected under their parent's traceAddress, in the order given."""
    children: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
    by_address: dict[tuple[int, ...], CallFrame] = {}
    for frame, address in frames:
        key = tuple(address)
        if key in by_address:
            raise _Unreadable(f"traceAddress {address} twice")
        by_address[key] = frame
        if key:
            children.setdefault(key[:-1], []).append(key)
    if () not in by_address:
        raise _Unreadable("no top-level frame")
    orphans = [k for k in by_address if k and k[:-1] not in by_address]
    if orphans:
        raise _Unreadable(f"traceAddress {list(orphans[0])} has no parent")

    def build(key: tuple[int, ...]) -> CallFrame:
        frame = by_address[key]
        kids = sorted(children.get(key, []), key=lambda k: k[-1])
        if not kids:
            return frame
        return CallFrame(frame.kind, frame.sender, frame.to, frame.value, frame.input, frame.output, frame.error,
                         tuple(build(k) for k in kids))

    return build(())
