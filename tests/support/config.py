"""The smallest valid configuration, for tests that add to it."""

MINIMAL = """
[storage]
url = "sqlite:////tmp/kamiyo-test.db"

[[chains]]
name = "ethereum"
chain_id = 1
rpc = ["http://127.0.0.1:8545"]
"""
