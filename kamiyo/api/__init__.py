"""The HTTP API: findings, incidents, deployments, fork families and watchlists under /v1, for API keys with
tiers and scopes (keys.py), described by an OpenAPI 3.1 document (openapi.py).

`create_app` builds the aiohttp application over an engine it does not own; `kamiyo run` serves it beside the
daemon, `kamiyo api` alone and read-only. Nothing here follows chains or writes anything but watchlists.
"""

__all__ = ["create_app", "start"]


def __getattr__(name: str):
    # lazily: `kamiyo apikey` needs keys.py, not aiohttp, the routes and the reports behind them
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
