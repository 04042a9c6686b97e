// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {IERC20} from "../Interfaces.sol";

// first-depositor-inflation: an ERC-4626-style vault whose share price its first depositor can inflate.

/// Models an ERC-4626 vault (deposit / redeem, shares an ERC-20 of the vault itself, with ERC-4626's events).
/// VULNERABLE: totalAssets() is the vault's token balance, which anyone raises by sending tokens straight to it,
/// and deposit() rounds the shares down without refusing zero, with no virtual or dead shares (see BUG). A first
/// depositor of 1 wei who then donates D makes a later deposit below D mint nothing: it goes to his one share.
contract InflatableVault {
    string public constant name = "Inflatable Vault Share";
    string public constant symbol = "ivSHARE";
    uint8 public constant decimals = 18;
    IERC20 public immutable asset;
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Deposit(address indexed sender, address indexed owner, uint256 assets, uint256 shares);
    event Withdraw(address indexed sender, address indexed receiver, address indexed owner, uint256 assets,
                   uint256 shares);

    constructor(IERC20 asset_) {
        asset = asset_;
    }

    function totalAssets() public view returns (uint256) {
        return asset.balanceOf(address(this));
    }

    function deposit(uint256 assets, address receiver) external returns (uint256 shares) {
        uint256 supply = totalSupply;
        shares = supply == 0 ? assets : (assets * supply) / totalAssets(); // BUG: rounds to 0 and accepts it
        asset.transferFrom(msg.sender, address(this), assets);
        totalSupply = supply + shares;
        balanceOf[receiver] += shares;
        emit Transfer(address(0), receiver, shares);
        emit Deposit(msg.sender, receiver, assets, shares);
    }

    function redeem(uint256 shares, address receiver, address owner) external returns (uint256 assets) {
        require(msg.sender == owner, "InflatableVault: not the owner");
        assets = (shares * totalAssets()) / totalSupply;
        balanceOf[owner] -= shares;
        totalSupply -= shares;
        emit Transfer(owner, address(0), shares);
        emit Withdraw(msg.sender, receiver, owner, assets, shares);
        asset.transfer(receiver, assets);
    }

    function transfer(address to, uint256 shares) external returns (bool) {
        balanceOf[msg.sender] -= shares;
        balanceOf[to] += shares;
        emit Transfer(msg.sender, to, shares);
        return true;
    }
}
