"""The credit transactions view in SQLite."""

from __future__ import annotations

from projections.sqlite import SQLiteView
from projections.transactions.view import TransactionsView


class SQLiteTransactionsView(SQLiteView, TransactionsView):
    pass
