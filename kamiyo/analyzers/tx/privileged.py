"""`privileged-change`: who may change a watched contract just changed, read from the contract's own logs.

It decodes OpenZeppelin's standard events (Ownable, Ownable2Step, ERC-1967 proxies and beacons, AccessControl,
Pausable) emitted by contracts in `activity.context["watched"]` (lowercase address -> label or None, for this
block's chain) and reports every one, ranked by how much control it moves. It must not report contracts nobody
watches, whatever they emit (the exploit heuristics are other analyzers), nor read calldata, traces or state:
what the log does not say (the previous implementation, whether the sender is a multisig) it does not guess.

Decoding is strict so that a finding never names a wrong address: a log whose shape cannot be read without
guessing is skipped with a warning, never raised on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eth_hash.auto import keccak
from pydantic import Field, field_validator

from ... import log
from ...findings import Finding, FindingType, Severity, fingerprint
from .base import LOGS, Analyzer, AnalyzerInfo, BlockActivity, Log, NoSettings, TxObserved
from .flows import topic

KIND = "privileged-change"
ZERO_ADDRESS = "0x" + "00" * 20
DEFAULT_ADMIN_ROLE = "0x" + "00" * 32  # AccessControl: the admin of every role unless set otherwise

_log = log.get("kamiyo.analyzers.privileged")


def role_id(name: str) -> str:
    """An AccessControl role id as contracts define it: `bytes32 public constant X = keccak256("X")`."""
    return "0x" + keccak(name.encode()).hex()


# Roles whose grant hands over the contract (severity high, like any ownership change). TIMELOCK_ADMIN_ROLE is
# the admin of every role in OpenZeppelin 4.x's TimelockController (5.x uses DEFAULT_ADMIN_ROLE).
ADMIN_ROLES = {DEFAULT_ADMIN_ROLE: "DEFAULT_ADMIN_ROLE", role_id("TIMELOCK_ADMIN_ROLE"): "TIMELOCK_ADMIN_ROLE"}
# Well-known role names, for people reading the evidence only: they do not change the severity.
ROLE_NAMES = {
    **ADMIN_ROLES,
    **{role_id(n): n for n in ("MINTER_ROLE", "BURNER_ROLE", "PAUSER_ROLE", "UPGRADER_ROLE", "PROPOSER_ROLE",
                               "EXECUTOR_ROLE", "CANCELLER_ROLE")},
}


@dataclass(frozen=True, slots=True)
class Param:
    name: str  # as in OpenZeppelin's declaration, so the evidence reads like the contract's ABI
    type: str  # "address" or "bytes32": every parameter here is one 32-byte word
    role: str | None = None  # how an address parameter is listed in evidence["addresses"]


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    params: tuple[Param, ...]
    indexed: int  # how many leading parameters OpenZeppelin's declaration indexes
    severity: Severity
    type: FindingType
    signature: str = field(init=False)
    topic: str = field(init=False)

    def __post_init__(self) -> None:
        signature = f"{self.name}({','.join(p.type for p in self.params)})"
        object.__setattr__(self, "signature", signature)
        object.__setattr__(self, "topic", topic(signature))


def _addr(name: str, role: str) -> Param:
    return Param(name, "address", role)


_ROLE = Param("role", "bytes32")
HIGH, MEDIUM, LOW = Severity.HIGH, Severity.MEDIUM, Severity.LOW
MOVES, LESSENS = FindingType.SUSPICIOUS, FindingType.INFO

# Severity is how much control the change can hand to someone, which is what an operator triages by:
# - high: the change lets its beneficiary do anything to the contract from now on: new code (Upgraded,
#   BeaconUpgraded), a new upgrader (AdminChanged), a new owner (OwnershipTransferred, renouncing included:
#   it is as irreversible), or a role that administers every other role (RoleGranted of an admin role).
# - medium: a bounded power handed out (RoleGranted of any other role), or a transfer that is only pending
#   (Ownable2Step's OwnershipTransferStarted: the new owner must still accept, and the OwnershipTransferred
#   of that acceptance is reported high; the start is the warning that leaves time to act).
# - low: nobody gains a power. RoleRevoked takes one away (the grant that might precede a takeover was
#   reported when it happened); Paused/Unpaused toggle operation, and pausing is usually the team's own
#   response to an incident. Protocol teams still want to hear of every one: an unexpected pause or revoke
#   is how they learn a key is in someone else's hands.
# The type follows the same line: changes that move or hand out control are suspicious until the team says
# they were planned; changes that only take control away or toggle operation are informational.
EVENTS: tuple[Event, ...] = (
    Event("OwnershipTransferred", (_addr("previousOwner", "previous_owner"), _addr("newOwner", "new_owner")), 2,
          HIGH, MOVES),
    Event("OwnershipTransferStarted", (_addr("previousOwner", "owner"), _addr("newOwner", "pending_owner")), 2,
          MEDIUM, MOVES),
    Event("Upgraded", (_addr("implementation", "implementation"),), 1, HIGH, MOVES),
    Event("BeaconUpgraded", (_addr("beacon", "beacon"),), 1, HIGH, MOVES),
    Event("AdminChanged", (_addr("previousAdmin", "previous_admin"), _addr("newAdmin", "new_admin")), 0,
          HIGH, MOVES),
    Event("RoleGranted", (_ROLE, _addr("account", "account"), _addr("sender", "granted_by")), 3, MEDIUM, MOVES),
    Event("RoleRevoked", (_ROLE, _addr("account", "account"), _addr("sender", "revoked_by")), 3, LOW, LESSENS),
    Event("Paused", (_addr("account", "paused_by"),), 0, LOW, LESSENS),
    Event("Unpaused", (_addr("account", "unpaused_by"),), 0, LOW, LESSENS),
)
BY_TOPIC = {e.topic: e for e in EVENTS}

# Set at creation: events a contract emits in the transaction that created it are its initial configuration
# (a proxy's first Upgraded, a timelock's role grants, an owner set by an initializer the constructor called);
# they are reported low and informational with `at_creation`. An initializer called later is not covered.
# Timelocks: a change executed by one was announced (scheduled) at least its delay before, which is what a
# protocol's governance is for; it is reported low and informational, with the timelock named. OpenZeppelin's
# TimelockController emits CallExecuted(id, index, target, value, data); Compound's Timelock (and GovernorBravo
# forks) ExecuteTransaction(txHash, target, value, signature, data, eta).
CALL_EXECUTED = topic("CallExecuted(bytes32,uint256,address,uint256,bytes)")
# The announcement itself is the warning that leaves time to act: a call scheduled on a watched contract (or by
# a watched timelock) is reported medium and informational, with the call's selector and delay.
CALL_SCHEDULED = topic("CallScheduled(bytes32,uint256,address,uint256,bytes,bytes32,uint256)")
EXECUTE_TRANSACTION = topic("ExecuteTransaction(bytes32,address,uint256,string,bytes,uint256)")
EVENT_NAMES = (*(e.name for e in EVENTS), "CallScheduled")


class PrivilegedSettings(NoSettings):
    ignore_events: list[str] = Field([], description="event names (as in EVENT_NAMES) not to report")
    min_severity: Severity = Field(Severity.LOW,
        description="findings below it are not reported; low reports everything")

    @field_validator("ignore_events")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in EVENT_NAMES]
        if unknown:
            raise ValueError(f"unknown event {', '.join(map(repr, unknown))}; known events: {', '.join(EVENT_NAMES)}")
        return names


class PrivilegedChange(Analyzer):
    info = AnalyzerInfo(
        id=KIND,
        title="Privileged change on a watched contract",
        description="A watched contract emitted an ownership, proxy-admin, implementation, beacon, role or pause "
                    "event: who controls it, or what code it runs, just changed.",
        severity=Severity.HIGH,
        # the event is the contract's own statement about itself; the rare miss is a contract that emits a
        # standard event name for something else
        confidence=0.9,
        consumes=frozenset({LOGS}),
        watched_only=True,
    )
    Settings = PrivilegedSettings

    def __init__(self, settings: PrivilegedSettings | None = None) -> None:
        super().__init__(settings)
        ignored = self._ignored = set(self.settings.ignore_events)
        self._reported = {t: e for t, e in BY_TOPIC.items() if e.name not in ignored}
        self._floor = self.settings.min_severity.rank

    def analyze(self, activity: BlockActivity) -> list[Finding]:
        watched: Mapping[str, str | None] = activity.context.get("watched") or {}
        if not watched or not self._reported:
            return []
        out = []
        for tx in activity.transactions:
            if not tx.success:  # a reverted transaction changed nothing (nodes give it no logs anyway)
                continue
            for entry in tx.logs:
                if entry.topics and entry.topics[0] == CALL_SCHEDULED and "CallScheduled" not in self._ignored:
                    scheduled = self._scheduled(activity, tx, entry, watched)
                    if scheduled is not None:
                        out.append(scheduled)
                    continue
                if entry.address not in watched or not entry.topics:
                    continue
                event = self._reported.get(entry.topics[0])
                if event is None:
                    continue
                args = decode(event, entry)
                if args is None:
                    _log.warning("privileged.log_skipped", chain_id=activity.block.chain_id,
                                 block=activity.block.number, tx_hash=tx.hash, log_index=entry.log_index,
                                 contract=entry.address, event_name=event.name, topics=len(entry.topics),
                                 data_chars=len(entry.data))
                    continue
                timelock = timelock_execution(tx)
                at_creation = created_by(activity, tx, entry.address)
                severity = Severity.LOW if timelock or at_creation else severity_of(event, args)
                if severity.rank >= self._floor:
                    out.append(self._finding(activity, tx, entry, event, args, watched, timelock, at_creation,
                                             severity))
        return out

    def _scheduled(self, activity: BlockActivity, tx: TxObserved, entry: Log,
                   watched: Mapping[str, str | None]) -> Finding | None:
        data = _hex(entry.data)
        if len(entry.topics) != 3 or data is None or len(data) < 7 * 32 or any(data[:12]):
            return None
        target = "0x" + data[12:32].hex()
        if target not in watched and entry.address not in watched or Severity.MEDIUM.rank < self._floor:
            return None
        offset, delay = int.from_bytes(data[64:96], "big"), int.from_bytes(data[128:160], "big")
        call = data[offset + 32 : offset + 36] if offset + 36 <= len(data) else b""
        chain_id = activity.block.chain_id
        evidence = {
            "summary": f"a call to {target} was scheduled on timelock {entry.address}, executable in {delay} s",
            "event": "CallScheduled", "contract": target, "label": watched.get(target), "timelock": entry.address,
            "timelock_label": watched.get(entry.address), "operation": entry.topics[1], "delay_seconds": delay,
            "selector": "0x" + call.hex() if call else None, "tx_hash": tx.hash, "log_index": entry.log_index,
            "sender": tx.sender, "addresses": [{"role": "contract", "address": target},
                                               {"role": "timelock", "address": entry.address},
                                               {"role": "tx_sender", "address": tx.sender}],
            "confidence": self.info.confidence,
        }
        return Finding(KIND, Severity.MEDIUM, FindingType.INFO, chain_id, target, activity.block.number, tx.hash,
                       fingerprint(KIND, chain_id, target, tx.hash, entry.log_index), evidence)

    def _finding(self, activity: BlockActivity, tx: TxObserved, entry: Log, event: Event, args: dict[str, str],
                 watched: Mapping[str, str | None], timelock: dict[str, Any] | None, at_creation: bool,
                 severity: Severity) -> Finding:
        evidence: dict[str, Any] = {
            "event": event.name,
            "signature": event.signature,
            "contract": entry.address,
            "label": watched.get(entry.address),
            "tx_hash": tx.hash,
            "log_index": entry.log_index,
            # logs cannot tell an EOA from a timelock or a multisig: the transaction's ends say who acted
            # (an executor calling a timelock shows as sender = executor, to = the timelock)
            "sender": tx.sender,
            "sender_label": watched.get(tx.sender),
            "to": tx.to,
            "to_label": watched.get(tx.to) if tx.to else None,
            "args": args,
            "timelock": timelock,
            "at_creation": at_creation,
            "confidence": self.info.confidence,
        }
        if "role" in args:
            evidence["role"] = args["role"]
            evidence["role_name"] = ROLE_NAMES.get(args["role"])
        evidence["addresses"] = _addresses(event, args, entry, tx)
        return Finding(
            kind=KIND,
            severity=severity,
            type=FindingType.INFO if timelock or at_creation else event.type,
            chain_id=activity.block.chain_id,
            subject=entry.address,
            block=activity.block.number,
            tx_hash=tx.hash,
            fingerprint=fingerprint(KIND, activity.block.chain_id, entry.address, tx.hash, entry.log_index),
            evidence=evidence,
        )


def created_by(activity: BlockActivity, tx: TxObserved, contract: str) -> bool:
    """Whether this transaction created the contract: its constructor (or an initializer called from it) sets
    its first owner, roles and implementation, which is a set-up, not a change."""
    created = activity.context.get("created") or {}
    return created.get(contract) == tx.hash or any(c.address == contract for c in tx.created)


def timelock_execution(tx: TxObserved) -> dict[str, Any] | None:
    """The timelock that executed a scheduled call in this transaction, or None. Any emitter counts: the
    event's topic and shape are the statement, and the transaction's other logs are the contract's own."""
    for entry in tx.logs:
        if not entry.topics:
            continue
        if entry.topics[0] == CALL_EXECUTED and len(entry.topics) == 3:
            target = _hex(entry.data)
            if target is not None and len(target) >= 32 and not any(target[:12]):
                return {"timelock": entry.address, "standard": "TimelockController", "operation": entry.topics[1],
                        "target": "0x" + target[12:32].hex(), "log_index": entry.log_index}
        elif entry.topics[0] == EXECUTE_TRANSACTION and len(entry.topics) == 3:
            target = _hex(entry.topics[2])
            if target is not None and len(target) == 32 and not any(target[:12]):
                return {"timelock": entry.address, "standard": "CompoundTimelock", "operation": entry.topics[1],
                        "target": "0x" + target[12:].hex(), "log_index": entry.log_index}
    return None


def severity_of(event: Event, args: dict[str, str]) -> Severity:
    """The event's severity, except that granting a role which administers every other role is high."""
    if event.name == "RoleGranted" and args["role"] in ADMIN_ROLES:
        return Severity.HIGH
    return event.severity


def _addresses(event: Event, args: dict[str, str], entry: Log, tx: TxObserved) -> list[dict[str, str]]:
    """Addresses by role, as incidents list them; the zero address (a renounce, an initial owner) is left out:
    it would link every finding that names it."""
    out = [{"role": "contract", "address": entry.address}]
    out += [{"role": p.role, "address": args[p.name]} for p in event.params
            if p.role is not None and args[p.name] != ZERO_ADDRESS]
    out.append({"role": "tx_sender", "address": tx.sender})
    if tx.to:
        out.append({"role": "tx_to", "address": tx.to})
    return out


def decode(event: Event, entry: Log) -> dict[str, str] | None:
    """The event's arguments by parameter name (addresses and bytes32 as lowercase 0x hex), or None.

    Solidity puts indexed parameters in topics and the rest in data, each in declaration order, one word each.
    Accepted: OpenZeppelin's indexing, none indexed or all indexed (re-declarations seen in the wild), with data
    of exactly the remaining words. Any other split (one of two addresses indexed) cannot be read without
    guessing which parameter is which, so it is refused, as is anything not hex, a word that is not a clean
    address, or data longer or shorter than the event's.
    """
    n = len(event.params)
    indexed = len(entry.topics) - 1
    if indexed not in (event.indexed, 0, n):
        return None
    data = _hex(entry.data)
    if data is None or len(data) != 32 * (n - indexed):
        return None
    words = []
    for t in entry.topics[1:]:
        word = _hex(t)
        if word is None or len(word) != 32:
            return None
        words.append(word)
    words += [data[i : i + 32] for i in range(0, len(data), 32)]
    args = {}
    for param, word in zip(event.params, words):
        if param.type == "address":
            if any(word[:12]):  # Solidity left-pads addresses with zeros; dirty high bytes are not an address
                return None
            args[param.name] = "0x" + word[12:].hex()
        else:
            args[param.name] = "0x" + word.hex()
    return args


def _hex(text: str) -> bytes | None:
    if not isinstance(text, str) or text[:2] not in ("0x", "0X"):
        return None
    digits = text[2:]
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        return None
    return raw if 2 * len(raw) == len(digits) else None  # fromhex skips spaces: refuse them
