// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {IERC20, IUniswapV2Pair, IUniswapV2Callee, V2Math} from "./Interfaces.sol";

/// Benign (flash-arbitrage): an arbitrage bot's contract. It flash-swaps a token out of the pair where that
/// token is cheap, sells it in the pair where it is dear, repays the first pair in the other token and keeps
/// the difference, reverting unless there is one. Both pairs' prices move towards each other; nobody loses
/// anything they did not agree to trade.
contract FlashArbitrage is IUniswapV2Callee {
    address public immutable owner;
    address private lender; // the pair a run() is borrowing from, the only one allowed to call back

    constructor() {
        owner = msg.sender;
    }

    /// Borrow `amount` of `token` from `cheap`, sell it in `dear`; the profit, in the other token, goes to the owner.
    function run(IUniswapV2Pair cheap, IUniswapV2Pair dear, address token, uint256 amount) external {
        require(msg.sender == owner, "not owner");
        bool tokenIs0 = cheap.token0() == token;
        lender = address(cheap);
        cheap.swap(tokenIs0 ? amount : 0, tokenIs0 ? 0 : amount, address(this), abi.encode(dear, token));
        lender = address(0);
        address other = tokenIs0 ? cheap.token1() : cheap.token0();
        IERC20(other).transfer(owner, IERC20(other).balanceOf(address(this)));
    }

    function uniswapV2Call(address sender, uint256 amount0, uint256 amount1, bytes calldata data) external {
        require(msg.sender == lender && sender == address(this), "unexpected callback");
        (IUniswapV2Pair dear, address token) = abi.decode(data, (IUniswapV2Pair, address));
        IUniswapV2Pair cheap = IUniswapV2Pair(msg.sender);
        address other = cheap.token0() == token ? cheap.token1() : cheap.token0();
        uint256 amount = amount0 + amount1;
        // The callback sees the pair's reserves from before this swap: what it owes is priced on those.
        (uint256 rOther, uint256 rToken) = V2Math.reserves(cheap, other);
        uint256 owed = V2Math.amountIn(amount, rOther, rToken);
        uint256 received = V2Math.sell(dear, token, amount, address(this));
        require(received > owed, "FlashArbitrage: no profit");
        IERC20(other).transfer(msg.sender, owed);
    }
}
