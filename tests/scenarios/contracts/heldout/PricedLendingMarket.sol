// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {IERC20, IUniswapV2Pair, IUniswapV2Callee, V2Math} from "../Interfaces.sol";

// flash-loan-liquidation (benign): a lending market priced by a feed its operator pushes, and a liquidation
// bot that funds the repayment with a flash swap.

/// Benign: a lending market in the manner of Compound and Aave. Lenders supply the debt asset; borrowers post the
/// collateral token and borrow up to 75% of its value at the feed's price. A position whose debt exceeds 80% of
/// its collateral's value may be liquidated: anyone repays up to half its debt and receives collateral worth the
/// repayment plus a 10% bonus. The price is pushed by the operator (as an oracle network would), never read from
/// a pool.
contract PricedLendingMarket {
    uint256 public constant LTV_BPS = 7500;
    uint256 public constant LIQUIDATION_BPS = 8000;
    uint256 public constant CLOSE_FACTOR_BPS = 5000;
    uint256 public constant BONUS_BPS = 1000;
    address public immutable operator;
    IERC20 public immutable collateral;
    IERC20 public immutable debtAsset;
    uint256 public price; // debt-asset units per collateral unit, 1e18

    mapping(address => uint256) public supplied;
    mapping(address => uint256) public collateralOf;
    mapping(address => uint256) public debtOf;

    event PriceUpdated(uint256 price);
    event Supplied(address indexed lender, uint256 amount);
    event CollateralDeposited(address indexed borrower, uint256 amount);
    event Borrowed(address indexed borrower, uint256 amount);
    event Liquidated(address indexed borrower, address indexed liquidator, uint256 repaid, uint256 seized);

    constructor(IERC20 collateral_, IERC20 debtAsset_, uint256 price_) {
        operator = msg.sender;
        collateral = collateral_;
        debtAsset = debtAsset_;
        price = price_;
        emit PriceUpdated(price_);
    }

    function setPrice(uint256 price_) external {
        require(msg.sender == operator, "PricedLendingMarket: not the operator");
        price = price_;
        emit PriceUpdated(price_);
    }

    function collateralValue(address borrower) public view returns (uint256) {
        return (collateralOf[borrower] * price) / 1e18;
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
        require(debtOf[msg.sender] * 10000 <= collateralValue(msg.sender) * LTV_BPS,
                "PricedLendingMarket: undercollateralized");
        debtAsset.transfer(msg.sender, amount);
        emit Borrowed(msg.sender, amount);
    }

    function liquidate(address borrower, uint256 repay) external returns (uint256 seized) {
        uint256 debt = debtOf[borrower];
        require(debt * 10000 > collateralValue(borrower) * LIQUIDATION_BPS, "PricedLendingMarket: healthy");
        require(repay * 10000 <= debt * CLOSE_FACTOR_BPS, "PricedLendingMarket: above the close factor");
        seized = (repay * 1e18 * (10000 + BONUS_BPS)) / (price * 10000);
        require(seized <= collateralOf[borrower], "PricedLendingMarket: not enough collateral");
        debtAsset.transferFrom(msg.sender, address(this), repay);
        debtOf[borrower] = debt - repay;
        collateralOf[borrower] -= seized;
        collateral.transfer(msg.sender, seized);
        emit Liquidated(borrower, msg.sender, repay, seized);
    }
}

/// Benign: a liquidation bot. run() flash-swaps the debt asset from a deep pair, repays part of an unhealthy
/// position, sells the seized collateral in another pair, repays the flash swap with its fee and sends the
/// profit to the owner; it reverts unless there is one.
contract FlashLiquidator is IUniswapV2Callee {
    address public immutable owner;
    address private lender; // the pair of the current run, the only one allowed to call back

    constructor() {
        owner = msg.sender;
    }

    function run(IUniswapV2Pair flashPair, IUniswapV2Pair sellPair, PricedLendingMarket market, address borrower,
                 uint256 repay) external {
        require(msg.sender == owner, "not owner");
        address debt = address(market.debtAsset());
        bool debtIs0 = flashPair.token0() == debt;
        lender = address(flashPair);
        flashPair.swap(debtIs0 ? repay : 0, debtIs0 ? 0 : repay, address(this),
                       abi.encode(sellPair, market, borrower));
        lender = address(0);
        IERC20(debt).transfer(owner, IERC20(debt).balanceOf(address(this)));
    }

    function uniswapV2Call(address sender, uint256 amount0, uint256 amount1, bytes calldata data) external {
        require(msg.sender == lender && sender == address(this), "unexpected callback");
        (IUniswapV2Pair sellPair, PricedLendingMarket market, address borrower) =
            abi.decode(data, (IUniswapV2Pair, PricedLendingMarket, address));
        uint256 repay = amount0 + amount1;
        IERC20 debt = market.debtAsset();
        debt.approve(address(market), repay);
        uint256 seized = market.liquidate(borrower, repay);
        uint256 proceeds = V2Math.sell(sellPair, address(market.collateral()), seized, address(this));
        uint256 owed = (repay * 1000) / 997 + 1;
        require(proceeds > owed, "FlashLiquidator: no profit");
        debt.transfer(msg.sender, owed);
    }
}
