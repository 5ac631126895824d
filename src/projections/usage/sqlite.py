"""The usage log in SQLite."""

from __future__ import annotations

from projections.sqlite import SQLiteView
from projections.usage.view import UsageView


class SQLiteUsageView(SQLiteView, UsageView):
    pass
