"""The webhooks view in SQLite."""

from __future__ import annotations

from projections.sqlite import SQLiteView
from projections.webhooks.view import WebhooksView


class SQLiteWebhooksView(SQLiteView, WebhooksView):
    pass
