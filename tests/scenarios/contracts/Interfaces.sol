// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

// The interfaces the scenario contracts talk through, and Uniswap V2's constant-product arithmetic (the pairs
// themselves are Uniswap's own npm build; these are only the calls made to them).

interface IERC20 {
    function totalSupply() external view returns (uint256);
    function balanceOf(address account) external view returns (uint256);
    function allowance(address owner, address spender) external view returns (uint256);
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
    function approve(address spender, uint256 amount) external returns (bool);
}

interface IUniswapV2Pair {
    function token0() external view returns (address);
    function token1() external view returns (address);
    function getReserves() external view returns (uint112 reserve0, uint112 reserve1, uint32 blockTimestampLast);
    function swap(uint256 amount0Out, uint256 amount1Out, address to, bytes calldata data) external;
    function mint(address to) external returns (uint256 liquidity);
    function burn(address to) external returns (uint256 amount0, uint256 amount1);
    function balanceOf(address owner) external view returns (uint256);
    function transferFrom(address from, address to, uint256 value) external returns (bool);
}

interface IUniswapV2Callee {
    function uniswapV2Call(address sender, uint256 amount0, uint256 amount1, bytes calldata data) external;
}

library V2Math {
    /// What a V2 pair pays for `given` in, after its 0.3% fee (UniswapV2Library.getAmountOut).
    function amountOut(uint256 given, uint256 reserveIn, uint256 reserveOut) internal pure returns (uint256) {
        uint256 withFee = given * 997;
        return (withFee * reserveOut) / (reserveIn * 1000 + withFee);
    }

    /// The least input a V2 pair accepts for `wanted` out (UniswapV2Library.getAmountIn).
    function amountIn(uint256 wanted, uint256 reserveIn, uint256 reserveOut) internal pure returns (uint256) {
        return (reserveIn * wanted * 1000) / ((reserveOut - wanted) * 997) + 1;
    }

    /// The pair's reserves ordered as (reserve of `tokenIn`, reserve of the other token).
    function reserves(IUniswapV2Pair pair, address tokenIn) internal view returns (uint256 rIn, uint256 rOut) {
        (uint112 r0, uint112 r1,) = pair.getReserves();
        (rIn, rOut) = pair.token0() == tokenIn ? (uint256(r0), uint256(r1)) : (uint256(r1), uint256(r0));
    }

    /// Sell `amount` of `tokenIn`, already held by the caller, into `pair`; the output goes to `to`.
    function sell(IUniswapV2Pair pair, address tokenIn, uint256 amount, address to) internal returns (uint256 out) {
        (uint256 rIn, uint256 rOut) = reserves(pair, tokenIn);
        out = amountOut(amount, rIn, rOut);
        IERC20(tokenIn).transfer(address(pair), amount);
        (uint256 out0, uint256 out1) = pair.token0() == tokenIn ? (uint256(0), out) : (out, uint256(0));
        pair.swap(out0, out1, to, "");
    }
}
