"""The balances view in SQLite."""

from __future__ import annotations

from projections.balances.view import BalancesView
from projections.sqlite import SQLiteView


class SQLiteBalancesView(SQLiteView, BalancesView):
    pass
