"""The revenue view in PostgreSQL (NUMERIC sums)."""

from __future__ import annotations

from projections.postgres import PostgresView
from projections.revenue.view import RevenueView


class PostgresRevenueView(PostgresView, RevenueView):
    pass
