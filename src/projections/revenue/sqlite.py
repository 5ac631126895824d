"""The revenue view in SQLite (money summed exactly by dec_sum, see projections.sqlite)."""

from __future__ import annotations

from projections.revenue.view import RevenueView
from projections.sqlite import SQLiteView


class SQLiteRevenueView(SQLiteView, RevenueView):
    pass
