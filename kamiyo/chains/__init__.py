"""Chains: the JSON-RPC client and endpoint pool, block references; head tracking and catch-up follow."""
