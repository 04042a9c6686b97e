// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {IERC20} from "../Interfaces.sol";

// treasury-payout-by-owner (benign): a DAO treasury that collects fees and pays grants its owner approves.

/// Benign: a treasury owned by its deployer (the DAO's multisig, say). The protocol's fee payers send it tokens;
/// the owner pays grants from it to whoever the DAO voted for, of any size.
contract GrantsTreasury {
    address public owner;

    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    event FeeReceived(address indexed from, address indexed token, uint256 amount);
    event GrantPaid(address indexed recipient, address indexed token, uint256 amount, string memo);

    constructor() {
        owner = msg.sender;
        emit OwnershipTransferred(address(0), msg.sender);
    }

    function payFee(IERC20 token, uint256 amount) external {
        token.transferFrom(msg.sender, address(this), amount);
        emit FeeReceived(msg.sender, address(token), amount);
    }

    function payGrant(IERC20 token, address recipient, uint256 amount, string calldata memo) external {
        require(msg.sender == owner, "GrantsTreasury: not the owner");
        token.transfer(recipient, amount);
        emit GrantPaid(recipient, address(token), amount, memo);
    }
}
