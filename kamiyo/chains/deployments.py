"""Every contract a block created, top-level and inside transactions (factories, CREATE2, clones).

The cheapest source an endpoint offers is used, probed once per endpoint: `trace_block` (parity traces; on anvil
~4,400 blocks/s), else `debug_traceBlockByNumber` with the call tracer (~24 blocks/s), else receipts'
`contractAddress`, which sees top-level deployments only; that last case is logged, since factory products are
then missed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from .. import log, metrics
from .mappers import MalformedNodeAnswer
from .rpc import RpcClient, RpcError, RpcResponseError

TRACE_BLOCK, DEBUG_TRACE, RECEIPTS = "trace_block", "debug_traceBlockByNumber", "receipts"


@dataclass(frozen=True, slots=True)
class BlockTraces:
    method: str  # TRACE_BLOCK, DEBUG_TRACE or RECEIPTS
    raw: object  # the node's answer, unread


@dataclass(frozen=True, slots=True)
class NewContract:
    chain_id: int
    address: str  # lowercase 0x
    block: int
    tx_hash: str
    creator: str  # the account or contract that executed the CREATE
    deployer: str  # the transaction's sender
    internal: bool  # created inside a transaction by another contract


def _address(value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) != 42 or not value.startswith("0x"):
        raise MalformedNodeAnswer(f"{what}: expected an address, got {value!r:.60}")
    return value.lower()


class DeploymentFinder:
    def __init__(self, client: RpcClient, chain_id: int, chain_name: str = "", traces: str = "auto") -> None:
        self.client = client
        self.traces = traces  # the chain's `traces` setting: auto, trace_block, debug_trace or none
        self.chain_id = chain_id
        self.method: str | None = None
        self.chain_name = chain_name or str(chain_id)
        self._probing = asyncio.Lock()
        self.log = log.get("kamiyo.deployments").bind(chain=chain_name or str(chain_id))

    async def probe(self) -> str:
        candidates = [(TRACE_BLOCK, ["0x0"]), (DEBUG_TRACE, ["0x0", {"tracer": "callTracer"}])]
        chosen = {"auto": candidates, "trace_block": candidates[:1], "debug_trace": candidates[1:], "none": []}
        for method, params in chosen[self.traces]:
            try:
                await self.client.call(method, params)
            except RpcError:
                continue
            self.method = method
            break
        else:
            self.method = RECEIPTS
            self.log.warning("deployments.no_traces", traces=self.traces,
                             detail="no trace method (configured or offered): contracts created inside "
                                    "transactions will be missed and analyzers that need traces skipped")
        self.log.info("deployments.source", method=self.method)
        metrics.DEPLOYMENT_SOURCE.labels(self.chain_name, self.method).set(1)
        return self.method

    async def find(self, number: int) -> list[NewContract]:
        return self.found_in(number, await self.fetch(number))

    async def fetch(self, number: int) -> BlockTraces:
        """The block's answer from the cheapest source: its traces, or its receipts where there are none. The
        transaction analyzers read the same answer, so a traced block is traced once."""
        if self.method is None:
            async with self._probing:  # blocks fetched ahead all start here: probe once
                if self.method is None:
                    await self.probe()
        if self.method == TRACE_BLOCK:
            return BlockTraces(TRACE_BLOCK, await self.client.call(TRACE_BLOCK, [hex(number)]))
        if self.method == DEBUG_TRACE:
            return BlockTraces(DEBUG_TRACE, await self.client.call(DEBUG_TRACE, [hex(number), {"tracer": "callTracer"}]))
        return BlockTraces(RECEIPTS, await self.client.call("eth_getBlockReceipts", [hex(number)]))

    def found_in(self, number: int, answer: BlockTraces) -> list[NewContract]:
        if answer.method == TRACE_BLOCK:
            return self._from_parity(number, answer.raw)
        if answer.method == DEBUG_TRACE:
            return self._from_call_tracer(number, answer.raw)
        return self._from_receipts(number, answer.raw)

    def _from_parity(self, number: int, traces: object) -> list[NewContract]:
        if not isinstance(traces, list):
            raise MalformedNodeAnswer(f"trace_block {number}: expected a list")
        senders = {t.get("transactionHash"): t.get("action", {}).get("from")
                   for t in traces if isinstance(t, dict) and t.get("traceAddress") == []}
        found = []
        for t in traces:
            if not isinstance(t, dict) or t.get("type") != "create" or t.get("error") or not t.get("result"):
                continue  # failed creations leave no contract
            tx = t.get("transactionHash") or ""
            found.append(NewContract(
                self.chain_id, _address(t["result"].get("address"), "trace.result.address"), number, tx,
                _address(t.get("action", {}).get("from"), "trace.action.from"),
                _address(senders.get(tx) or t["action"]["from"], "trace sender"), t.get("traceAddress") != [],
            ))
        return found

    def _from_call_tracer(self, number: int, results: object) -> list[NewContract]:
        if not isinstance(results, list):
            raise MalformedNodeAnswer(f"debug_traceBlockByNumber {number}: expected a list")
        found = []
        for entry in results:
            frame = entry.get("result") if isinstance(entry, dict) else None
            if not isinstance(frame, dict):
                continue
            tx, sender = entry.get("txHash") or "", frame.get("from")
            stack = [(frame, False)]
            while stack:
                call, internal = stack.pop()
                if call.get("type") in ("CREATE", "CREATE2") and not call.get("error") and call.get("to"):
                    found.append(NewContract(self.chain_id, _address(call["to"], "callTracer.to"), number, tx,
                                             _address(call.get("from"), "callTracer.from"),
                                             _address(sender, "callTracer sender"), internal))
                stack.extend((c, True) for c in reversed(call.get("calls") or []) if isinstance(c, dict))
        return found

    def _from_receipts(self, number: int, receipts: object) -> list[NewContract]:
        if not isinstance(receipts, list):
            raise MalformedNodeAnswer(f"eth_getBlockReceipts {number}: expected a list")
        return [
            NewContract(self.chain_id, _address(r["contractAddress"], "receipt.contractAddress"), number,
                        r.get("transactionHash") or "", _address(r.get("from"), "receipt.from"),
                        _address(r.get("from"), "receipt.from"), False)
            for r in receipts
            if isinstance(r, dict) and r.get("contractAddress") and r.get("status") == "0x1"
        ]

    async def code(self, contracts: list[NewContract]) -> list[bytes]:
        """Runtime code of each new contract as of its block, in one batch. A node that no longer holds that
        block's state (not an archive node, and we are far behind) is asked for the code at the head instead:
        code only changes by self-destruction, which the head then shows as empty code."""
        if not contracts:
            return []
        answers = await self.client.batch([("eth_getCode", [c.address, hex(c.block)]) for c in contracts],
                                          return_exceptions=True)
        pruned = [i for i, a in enumerate(answers) if isinstance(a, RpcResponseError)]
        if pruned:
            self.log.info("deployments.code_at_head", contracts=len(pruned), block=contracts[pruned[0]].block)
            latest = await self.client.batch([("eth_getCode", [contracts[i].address, "latest"]) for i in pruned])
            for i, answer in zip(pruned, latest):
                answers[i] = answer
        out = []
        for contract, raw in zip(contracts, answers):
            if isinstance(raw, Exception):
                raise raw
            try:
                out.append(bytes.fromhex(raw[2:]) if isinstance(raw, str) and raw.startswith("0x") else None)
            except ValueError:
                out.append(None)
            if out[-1] is None:
                raise MalformedNodeAnswer(f"eth_getCode {contract.address}: expected hex, got {raw!r:.60}")
        return out
