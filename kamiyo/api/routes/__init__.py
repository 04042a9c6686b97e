"""The API's routes, one module per subject. Each module lists its `ROUTES` (kamiyo.api.context.Route) and may
have `setup(app)` for what its handlers keep on the application."""

from __future__ import annotations

from . import deployments, findings, incidents, lineage, service, sources, stream, suppressions, watchlists, webhooks

MODULES = (service, findings, incidents, deployments, lineage, sources, watchlists, webhooks, suppressions, stream)
ROUTES = [route for module in MODULES for route in module.ROUTES]
