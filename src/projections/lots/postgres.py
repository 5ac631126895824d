"""The lots view in PostgreSQL."""

from __future__ import annotations

from projections.lots.view import LotsView
from projections.postgres import PostgresView


class PostgresLotsView(PostgresView, LotsView):
    pass
