"""Kamiyo: on-chain security monitoring that links forks and clones of EVM contracts across chains."""

__version__ = "0.1.0"
