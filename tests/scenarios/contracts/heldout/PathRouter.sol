// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {IERC20, IUniswapV2Pair, V2Math} from "../Interfaces.sol";

// multi-hop-aggregator-swap (benign): a router that swaps along a path of V2 pairs in one transaction.

/// Benign: UniswapV2Router02's swapExactTokensForTokens in small. The amounts of every hop are computed from the
/// reserves first; the input goes to the first pair, each pair pays its output straight to the next, the last to
/// the caller.
contract PathRouter {
    function swapAlongPath(IUniswapV2Pair[] calldata pairs, address tokenIn, uint256 amountIn, uint256 minOut)
        external
        returns (uint256 out)
    {
        require(pairs.length > 0, "PathRouter: empty path");
        uint256[] memory outs = new uint256[](pairs.length);
        address[] memory ins = new address[](pairs.length);
        (address token, uint256 amount) = (tokenIn, amountIn);
        for (uint256 i = 0; i < pairs.length; i++) {
            (uint256 rIn, uint256 rOut) = V2Math.reserves(pairs[i], token);
            ins[i] = token;
            amount = V2Math.amountOut(amount, rIn, rOut);
            outs[i] = amount;
            token = pairs[i].token0() == token ? pairs[i].token1() : pairs[i].token0();
        }
        out = amount;
        require(out >= minOut, "PathRouter: slippage");
        IERC20(tokenIn).transferFrom(msg.sender, address(pairs[0]), amountIn);
        for (uint256 i = 0; i < pairs.length; i++) {
            address to = i + 1 < pairs.length ? address(pairs[i + 1]) : msg.sender;
            bool in0 = pairs[i].token0() == ins[i];
            pairs[i].swap(in0 ? 0 : outs[i], in0 ? outs[i] : 0, to, "");
        }
    }
}
