"""The usage log in PostgreSQL."""

from __future__ import annotations

from projections.postgres import PostgresView
from projections.usage.view import UsageView


class PostgresUsageView(PostgresView, UsageView):
    pass
