"""The webhooks view in PostgreSQL."""

from __future__ import annotations

from projections.postgres import PostgresView
from projections.webhooks.view import WebhooksView


class PostgresWebhooksView(PostgresView, WebhooksView):
    pass
