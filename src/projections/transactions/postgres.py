"""The credit transactions view in PostgreSQL."""

from __future__ import annotations

from projections.postgres import PostgresView
from projections.transactions.view import TransactionsView


class PostgresTransactionsView(PostgresView, TransactionsView):
    pass
