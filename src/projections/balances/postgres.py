"""The balances view in PostgreSQL."""

from __future__ import annotations

from projections.balances.view import BalancesView
from projections.postgres import PostgresView


class PostgresBalancesView(PostgresView, BalancesView):
    pass
