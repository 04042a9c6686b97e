"""Watchlists: what protocol teams register, and which findings concern them."""
