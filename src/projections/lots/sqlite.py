"""The lots view in SQLite."""

from __future__ import annotations

from projections.lots.view import LotsView
from projections.sqlite import SQLiteView


class SQLiteLotsView(SQLiteView, LotsView):
    pass
