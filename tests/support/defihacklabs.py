"""A DeFiHackLabs checkout written for a test or the demo: one incident naming a contract we deployed."""

from __future__ import annotations

from pathlib import Path


def write_checkout(root: Path, victim: str, fork_block: int, name: str = "UniPair") -> None:
    """One entry naming `victim` on mainnet as the vulnerable contract, in the README's and the PoC header's
    real formats (the heading, the Lost line, the PoC link; @KeyInfo and createSelectFork in the PoC)."""
    poc = root / "src" / "test" / "2026-11" / f"{name}_exp.sol"
    poc.parent.mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text(
        "# DeFi Hacks Reproduce - Foundry\n\n### List of DeFi Hacks & POCs\n\n"
        f"### 20261130 {name} - Price Manipulation\n\n### Lost: ~$1.2M\n\n"
        f"```sh\nforge test --contracts ./src/test/2026-11/{name}_exp.sol -vvv\n```\n\n"
        f"#### Contract\n\n[{name}_exp.sol](src/test/2026-11/{name}_exp.sol)\n\n---\n")
    poc.write_text(
        "// SPDX-License-Identifier: UNLICENSED\npragma solidity ^0.8.10;\n\n"
        "// @KeyInfo - Total Lost : ~$1.2M\n"
        f"// Attacker : 0x{'ee' * 20}\n// Attack Contract : 0x{'ef' * 20}\n// Vulnerable Contract : {victim}\n"
        f"// Attack Tx : https://etherscan.io/tx/0x{'12' * 32}\n\n// @Analysis\n// Post : https://example.org\n\n"
        "contract ContractTest {\n    function setUp() public {\n"
        f"        vm.createSelectFork(\"mainnet\", {fork_block});\n    }}\n}}\n")
