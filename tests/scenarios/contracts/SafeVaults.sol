// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {IERC20} from "./Interfaces.sol";

// Correct vaults: sole-depositor-withdraw's subjects, and the ordinary activity's savings vault.

/// Benign: an ETH vault like ReentrantVault, written correctly (the balance is cleared before the ether is
/// sent). Withdrawing all of it, even when one's own deposit is all the vault holds, is ordinary use.
contract SafeEtherVault {
    mapping(address => uint256) public balances;

    event Deposited(address indexed account, uint256 amount);
    event Withdrawn(address indexed account, uint256 amount);

    function deposit() external payable {
        balances[msg.sender] += msg.value;
        emit Deposited(msg.sender, msg.value);
    }

    function withdraw(uint256 amount) public {
        require(balances[msg.sender] >= amount, "SafeEtherVault: balance too low");
        balances[msg.sender] -= amount;
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        require(ok, "SafeEtherVault: transfer failed");
    }

    function withdrawAll() external {
        withdraw(balances[msg.sender]);
    }
}

/// Benign: an ERC-4626-like share vault over one token, with ERC-4626's Deposit and Withdraw events. Shares are
/// minted pro rata to the assets already held, so redeeming all shares returns all the assets.
contract ShareVault {
    IERC20 public immutable asset;
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Deposit(address indexed sender, address indexed owner, uint256 assets, uint256 shares);
    event Withdraw(
        address indexed sender, address indexed receiver, address indexed owner, uint256 assets, uint256 shares
    );

    constructor(IERC20 asset_) {
        asset = asset_;
    }

    function totalAssets() public view returns (uint256) {
        return asset.balanceOf(address(this));
    }

    function deposit(uint256 assets, address receiver) external returns (uint256 shares) {
        shares = totalSupply == 0 ? assets : (assets * totalSupply) / totalAssets();
        require(shares > 0, "ShareVault: zero shares");
        asset.transferFrom(msg.sender, address(this), assets);
        totalSupply += shares;
        balanceOf[receiver] += shares;
        emit Transfer(address(0), receiver, shares);
        emit Deposit(msg.sender, receiver, assets, shares);
    }

    function redeem(uint256 shares, address receiver, address owner) external returns (uint256 assets) {
        require(msg.sender == owner, "ShareVault: not the owner");
        assets = (shares * totalAssets()) / totalSupply;
        balanceOf[owner] -= shares;
        totalSupply -= shares;
        emit Transfer(owner, address(0), shares);
        emit Withdraw(msg.sender, receiver, owner, assets, shares);
        asset.transfer(receiver, assets);
    }
}
