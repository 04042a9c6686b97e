"""Which code a proxy runs, and when that changes.

A proxy whose code does not name its implementation keeps it in a standard storage slot (EIP-1967, EIP-1822,
ZeppelinOS) or behind a beacon (EIP-1967 beacon slot, then the beacon's `implementation()`). Upgrades announce
themselves with EIP-1967's `Upgraded(address)` and `BeaconUpgraded(address)` events, read per block with one
`eth_getLogs`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..analyzers.bytecode.classify import PROXY_SLOTS
from .mappers import MalformedNodeAnswer
from .rpc import RpcClient, RpcError

UPGRADED = "0xbc7cd75a20ee27fd9adebab32041f755214dbc6bffa90cc0225b39da2e5c2d3b"  # Upgraded(address)
BEACON_UPGRADED = "0x1cf3b03a6cf19fa2baba4df148e9dcabedea7f8a5c07840e207e5c089be95d3e"  # BeaconUpgraded(address)
IMPLEMENTATION_SELECTOR = "0x5c60da1b"  # implementation()
ZERO = "0x" + "00" * 20


@dataclass(frozen=True, slots=True)
class Upgrade:
    address: str  # the proxy
    block: int
    log_index: int
    implementation: str  # for a beacon upgrade, what the new beacon answers
    event: str  # "Upgraded" | "BeaconUpgraded"


def _word_address(word: object, what: str) -> str | None:
    if not isinstance(word, str) or not word.startswith("0x") or len(word) > 66:
        raise MalformedNodeAnswer(f"{what}: expected a 32-byte word, got {word!r:.80}")
    digits = word[2:].rjust(64, "0")
    try:
        int(digits, 16)
    except ValueError as exc:
        raise MalformedNodeAnswer(f"{what}: not hex: {word!r:.80}") from exc
    address = "0x" + digits[-40:].lower()
    return None if address == ZERO else address


class ProxyReader:
    def __init__(self, client: RpcClient) -> None:
        self.client = client

    async def implementations(self, proxies: list[tuple[str, str]], block: int) -> dict[str, str]:
        """address -> implementation for (address, standard) pairs whose code did not name it; where a slot is
        empty or unreadable the proxy is left out (it runs nothing we can name yet)."""
        wanted = [(a, s) for a, s in proxies if s in PROXY_SLOTS]
        if not wanted:
            return {}
        tag = hex(block)
        answers = await self.client.batch(
            [("eth_getStorageAt", [a, "0x" + PROXY_SLOTS[s].hex(), tag]) for a, s in wanted], return_exceptions=True
        )
        found, beacons = {}, {}
        for (address, standard), answer in zip(wanted, answers):
            if isinstance(answer, RpcError):
                continue
            target = _word_address(answer, f"eth_getStorageAt({address})")
            if target is None:
                continue
            (beacons if standard == "eip1967-beacon" else found)[address] = target
        found.update(await self._beacon_implementations(beacons, tag))
        return found

    async def _beacon_implementations(self, beacons: dict[str, str], tag: str) -> dict[str, str]:
        if not beacons:
            return {}
        answers = await self.client.batch(
            [("eth_call", [{"to": b, "data": IMPLEMENTATION_SELECTOR}, tag]) for b in beacons.values()],
            return_exceptions=True,
        )
        out = {}
        for proxy, answer in zip(beacons, answers):
            if not isinstance(answer, RpcError) and answer not in (None, "0x"):
                if (impl := _word_address(answer[:66], f"implementation() of beacon {beacons[proxy]}")) is not None:
                    out[proxy] = impl
        return out

    async def upgrades(self, block_hash: str, number: int) -> list[Upgrade]:
        logs = await self.client.call("eth_getLogs", [{"blockHash": block_hash, "topics": [[UPGRADED, BEACON_UPGRADED]]}])
        if not isinstance(logs, list):
            raise MalformedNodeAnswer(f"eth_getLogs for block {number}: expected a list, got {type(logs).__name__}")
        out, beacons = [], []
        for entry in logs:
            if not isinstance(entry, dict) or not isinstance(entry.get("topics"), list) or len(entry["topics"]) < 2:
                continue  # not the indexed-address form these events have: someone else's event of that name
            address = entry.get("address")
            if not isinstance(address, str) or len(address) != 42:
                continue
            target = _word_address(entry["topics"][1], f"log of {address}")
            index = int(entry.get("logIndex", "0x0"), 16)
            if target is None:
                continue
            if entry["topics"][0] == UPGRADED:
                out.append(Upgrade(address.lower(), number, index, target, "Upgraded"))
            else:
                beacons.append((address.lower(), index, target))
        if beacons:
            resolved = await self._beacon_implementations({f"{a}:{i}": b for a, i, b in beacons}, hex(number))
            for address, index, _beacon in beacons:
                if (impl := resolved.get(f"{address}:{index}")) is not None:
                    out.append(Upgrade(address, number, index, impl, "BeaconUpgraded"))
        return out
