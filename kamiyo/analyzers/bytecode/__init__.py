"""Bytecode fingerprint engine: decode, normalise, classify, sketch, index and group EVM runtime code."""
