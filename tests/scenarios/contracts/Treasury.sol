// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {IERC20} from "./Interfaces.sol";

// initializer-takeover: a treasury whose owner is set by initialize(), which its deployer never called.

/// Models a community treasury (written to sit behind a proxy, hence initialize() instead of a constructor):
/// members deposit ETH and tokens, and the owner may move them out. VULNERABLE: initialize() is open to anyone
/// until someone calls it (see BUG), and the deployer never did, so the first caller becomes the owner.
contract CommunityTreasury {
    address public owner;

    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    event Deposited(address indexed from, address indexed token, uint256 amount);
    event Withdrawn(address indexed to, address indexed token, uint256 amount);

    modifier onlyOwner() {
        require(msg.sender == owner && owner != address(0), "CommunityTreasury: not the owner");
        _;
    }

    function initialize(address newOwner) external {
        require(owner == address(0), "CommunityTreasury: initialized"); // BUG: no check of who the caller is
        owner = newOwner;
        emit OwnershipTransferred(address(0), newOwner);
    }

    function deposit() external payable {
        emit Deposited(msg.sender, address(0), msg.value);
    }

    function depositToken(IERC20 token, uint256 amount) external {
        token.transferFrom(msg.sender, address(this), amount);
        emit Deposited(msg.sender, address(token), amount);
    }

    function withdrawAll(address payable to) external onlyOwner {
        uint256 amount = address(this).balance;
        (bool ok,) = to.call{value: amount}("");
        require(ok, "CommunityTreasury: transfer failed");
        emit Withdrawn(to, address(0), amount);
    }

    function sweep(IERC20 token, address to) external onlyOwner {
        uint256 amount = token.balanceOf(address(this));
        token.transfer(to, amount);
        emit Withdrawn(to, address(token), amount);
    }
}
