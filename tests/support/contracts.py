"""Putting real contracts on a test chain: npm artifacts' creation code, a hand-assembled EIP-1167 clone factory,
and transactions that wait for their receipt. Used by integration tests and by `make demo`."""

from __future__ import annotations

import json
import time

from tests.support import npm_artifacts
from tests.support.anvil import AnvilNode

CREATE_PAIR = "c9c65396"  # createPair(address,address)


def creation_code(name: str) -> str:
    """The creation (init) code of an npm artifact, hex without 0x."""
    data = json.loads(npm_artifacts.artifact_path(name).read_text())
    code = data.get("bytecode") or data["evm"]["bytecode"]["object"]
    return (code["object"] if isinstance(code, dict) else code).removeprefix("0x")


def word(address: str) -> str:
    return "00" * 12 + address.removeprefix("0x").lower()


def send(node: AnvilNode, sender: str, data: str, to: str | None = None, timeout: float = 10.0) -> dict:
    """Send and wait for the receipt (anvil mines at once, but the receipt can lag the send by a moment)."""
    tx = {"from": sender, "data": data if data.startswith("0x") else "0x" + data, "gas": hex(8_000_000),
          **({"to": to} if to else {})}
    tx_hash = node.rpc("eth_sendTransaction", [tx])
    deadline = time.monotonic() + timeout
    while (receipt := node.rpc("eth_getTransactionReceipt", [tx_hash])) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if receipt is None or receipt["status"] != "0x1":
        raise RuntimeError(f"transaction {tx_hash} failed or was not mined: {receipt}")
    return receipt


def deploy(node: AnvilNode, sender: str, creation_hex: str, args_hex: str = "") -> str:
    return send(node, sender, creation_hex + args_hex)["contractAddress"].lower()


def create_pair(node: AnvilNode, sender: str, factory: str, token_a: str, token_b: str) -> str:
    """createPair through a V2 factory; the pair's address from its PairCreated log."""
    receipt = send(node, sender, CREATE_PAIR + word(token_a) + word(token_b), to=factory)
    return "0x" + receipt["logs"][0]["data"][26:66]


def minimal_proxy_runtime(implementation: str) -> str:
    return "363d3d373d3d3d363d73" + implementation.removeprefix("0x").lower() + "5af43d82803e903d91602b57fd5bf3"


def clone_factory_creation(implementation: str) -> str:
    """Init code of a contract that, on any call, CREATEs an EIP-1167 clone of `implementation` and returns its
    address. Hand-assembled: runtime = CODECOPY the clone's init code (kept after the runtime's 22 instruction
    bytes), CREATE it, return the address."""
    clone_init = "3d602d80600a3d3981f3" + minimal_proxy_runtime(implementation)  # 55 bytes
    runtime = "6037" "6016" "6000" "39" "6037" "6000" "6000" "f0" "6000" "52" "6020" "6000" "f3" + clone_init
    size = len(runtime) // 2
    return f"60{size:02x}80600b6000396000f3" + runtime


def make_clone(node: AnvilNode, sender: str, factory: str) -> str:
    receipt = send(node, sender, "0x", to=factory)
    trace = node.rpc("trace_transaction", [receipt["transactionHash"]])
    return next(t["result"]["address"] for t in trace if t["type"] == "create").lower()


def runtime_deployer(runtime_hex: str) -> str:
    """Init code that deploys `runtime_hex` exactly as given (for code we hold only as runtime, such as a
    recompiled fork built from source): CODECOPY the runtime that follows this 12-byte prefix, RETURN it."""
    runtime = runtime_hex.removeprefix("0x")
    size = len(runtime) // 2
    return f"61{size:04x}80600c6000396000f3" + runtime
