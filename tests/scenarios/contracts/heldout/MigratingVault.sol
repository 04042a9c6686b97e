// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {IERC20} from "../Interfaces.sol";

// vault-migration (benign): a team moves every deposit of its old vault into its new one, ledger and all.

/// Benign: the team's first vault. Users deposit one token and withdraw their own balance; the owner may migrate
/// once, which sends the whole balance to the successor and hands it the ledger, after which this vault is closed.
contract LegacyVault {
    address public immutable owner;
    IERC20 public immutable token;
    address public successor;
    address[] public depositors;
    mapping(address => uint256) public balances;

    event Deposited(address indexed account, uint256 amount);
    event Withdrawn(address indexed account, uint256 amount);
    event Migrated(address indexed successor, uint256 amount, uint256 accounts);

    constructor(IERC20 token_) {
        owner = msg.sender;
        token = token_;
    }

    function deposit(uint256 amount) external {
        require(successor == address(0), "LegacyVault: migrated");
        token.transferFrom(msg.sender, address(this), amount);
        if (balances[msg.sender] == 0) {
            depositors.push(msg.sender);
        }
        balances[msg.sender] += amount;
        emit Deposited(msg.sender, amount);
    }

    function withdraw(uint256 amount) external {
        require(successor == address(0), "LegacyVault: migrated");
        balances[msg.sender] -= amount;
        token.transfer(msg.sender, amount);
        emit Withdrawn(msg.sender, amount);
    }

    function migrate(SuccessorVault next) external {
        require(msg.sender == owner && successor == address(0), "LegacyVault: not allowed");
        successor = address(next);
        uint256[] memory amounts = new uint256[](depositors.length);
        for (uint256 i = 0; i < depositors.length; i++) {
            amounts[i] = balances[depositors[i]];
            balances[depositors[i]] = 0;
        }
        uint256 total = token.balanceOf(address(this));
        token.transfer(address(next), total);
        next.acceptMigration(depositors, amounts);
        emit Migrated(address(next), total, depositors.length);
    }
}

/// Benign: the successor, deployed by the same team. It takes the ledger from the legacy vault once, and then works
/// like it.
contract SuccessorVault {
    IERC20 public immutable token;
    address public immutable legacy;
    bool public migrated;
    mapping(address => uint256) public balances;

    event Credited(address indexed account, uint256 amount);
    event Withdrawn(address indexed account, uint256 amount);

    constructor(IERC20 token_, address legacy_) {
        token = token_;
        legacy = legacy_;
    }

    function acceptMigration(address[] calldata accounts, uint256[] calldata amounts) external {
        require(msg.sender == legacy && !migrated, "SuccessorVault: not the legacy vault");
        migrated = true;
        uint256 total;
        for (uint256 i = 0; i < accounts.length; i++) {
            balances[accounts[i]] += amounts[i];
            total += amounts[i];
            emit Credited(accounts[i], amounts[i]);
        }
        require(total <= token.balanceOf(address(this)), "SuccessorVault: ledger exceeds the funds");
    }

    function withdraw(uint256 amount) external {
        balances[msg.sender] -= amount;
        token.transfer(msg.sender, amount);
        emit Withdrawn(msg.sender, amount);
    }
}
