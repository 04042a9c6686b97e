"""Interface evidence: function selectors (evmole) and event topics, and which of them say little.

Every ERC-20 shares transfer/approve and every Ownable contract shares OwnershipTransferred, so matching them
is no evidence of lineage. `STANDARD_FEATURES` lists the selectors and topics of widely implemented standards,
computed here from their signatures; similarity scoring presumes them common even in a small corpus.
"""

from __future__ import annotations

import evmole
from eth_hash.auto import keccak

_STANDARD_FUNCTIONS = (
    # ERC-20 (+ common metadata and OpenZeppelin allowance helpers)
    "totalSupply()", "balanceOf(address)", "transfer(address,uint256)", "allowance(address,address)",
    "approve(address,uint256)", "transferFrom(address,address,uint256)", "name()", "symbol()", "decimals()",
    "increaseAllowance(address,uint256)", "decreaseAllowance(address,uint256)",
    # ERC-2612 permit
    "permit(address,address,uint256,uint256,uint8,bytes32,bytes32)", "nonces(address)", "DOMAIN_SEPARATOR()",
    # ERC-165, ERC-721, ERC-1155
    "supportsInterface(bytes4)", "ownerOf(uint256)", "safeTransferFrom(address,address,uint256)",
    "safeTransferFrom(address,address,uint256,bytes)", "setApprovalForAll(address,bool)", "getApproved(uint256)",
    "isApprovedForAll(address,address)", "tokenURI(uint256)", "baseURI()", "tokenByIndex(uint256)",
    "tokenOfOwnerByIndex(address,uint256)", "uri(uint256)", "balanceOfBatch(address[],uint256[])",
    "safeTransferFrom(address,address,uint256,uint256,bytes)",
    "safeBatchTransferFrom(address,address,uint256[],uint256[],bytes)",
    # Ownable, AccessControl, Pausable, Initializable, Multicall
    "owner()", "renounceOwnership()", "transferOwnership(address)", "pendingOwner()", "acceptOwnership()",
    "hasRole(bytes32,address)", "getRoleAdmin(bytes32)", "grantRole(bytes32,address)",
    "revokeRole(bytes32,address)", "renounceRole(bytes32,address)", "DEFAULT_ADMIN_ROLE()", "paused()",
    "pause()", "unpause()", "multicall(bytes[])",
    # proxies and upgrades
    "implementation()", "admin()", "upgradeTo(address)", "upgradeToAndCall(address,bytes)",
    "changeAdmin(address)", "proxiableUUID()",
)
_STANDARD_EVENTS = (
    "Transfer(address,address,uint256)", "Approval(address,address,uint256)",
    "ApprovalForAll(address,address,bool)", "TransferSingle(address,address,address,uint256,uint256)",
    "TransferBatch(address,address,address,uint256[],uint256[])", "URI(string,uint256)",
    "OwnershipTransferred(address,address)", "OwnershipTransferStarted(address,address)",
    "RoleGranted(bytes32,address,address)", "RoleRevoked(bytes32,address,address)",
    "RoleAdminChanged(bytes32,bytes32,bytes32)", "Paused(address)", "Unpaused(address)",
    "Initialized(uint8)", "Initialized(uint64)", "Upgraded(address)", "AdminChanged(address,address)",
    "BeaconUpgraded(address)",
)


def selector_of(signature: str) -> str:
    return "0x" + keccak(signature.encode()).hex()[:8]


def topic_of(signature: str) -> str:
    return "0x" + keccak(signature.encode()).hex()


STANDARD_FEATURES = frozenset(
    [selector_of(s) for s in _STANDARD_FUNCTIONS] + [topic_of(s) for s in _STANDARD_EVENTS]
)


def selectors(code: bytes) -> tuple[str, ...]:
    """Sorted `0x`-prefixed 4-byte selectors of the external functions evmole finds in the dispatcher."""
    if not code:
        return ()
    info = evmole.contract_info(code, selectors=True)
    return tuple(sorted({"0x" + f.selector for f in info.functions}))


def event_topics(candidates: tuple[bytes, ...]) -> tuple[str, ...]:
    return tuple(sorted({"0x" + c.hex() for c in candidates}))
