// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {IERC20, IUniswapV2Pair, V2Math} from "./Interfaces.sol";

/// Benign: the few router calls ordinary users make against Uniswap V2 pairs, each in one transaction (so the
/// order of other users' transactions in a block cannot break it): an exact-input swap, adding liquidity at
/// the pair's current ratio, and removing a share of one's liquidity.
contract MiniRouter {
    function swapExactIn(IUniswapV2Pair pair, address tokenIn, uint256 amountIn, uint256 minOut)
        external
        returns (uint256 out)
    {
        (uint256 rIn, uint256 rOut) = V2Math.reserves(pair, tokenIn);
        out = V2Math.amountOut(amountIn, rIn, rOut);
        require(out >= minOut, "MiniRouter: slippage");
        IERC20(tokenIn).transferFrom(msg.sender, address(pair), amountIn);
        bool in0 = pair.token0() == tokenIn;
        pair.swap(in0 ? 0 : out, in0 ? out : 0, msg.sender, "");
    }

    /// Deposit `amount0` of token0 and the matching amount of token1; the LP tokens go to the caller.
    function addLiquidity(IUniswapV2Pair pair, uint256 amount0) external returns (uint256 liquidity) {
        (uint112 r0, uint112 r1,) = pair.getReserves();
        uint256 amount1 = (amount0 * r1) / r0 + 1;
        IERC20(pair.token0()).transferFrom(msg.sender, address(pair), amount0);
        IERC20(pair.token1()).transferFrom(msg.sender, address(pair), amount1);
        liquidity = pair.mint(msg.sender);
    }

    /// Burn `shareBps` / 10000 of the caller's LP tokens; both tokens go back to the caller.
    function removeLiquidity(IUniswapV2Pair pair, uint256 shareBps) external returns (uint256, uint256) {
        uint256 liquidity = (pair.balanceOf(msg.sender) * shareBps) / 10000;
        pair.transferFrom(msg.sender, address(pair), liquidity);
        return pair.burn(msg.sender);
    }
}
