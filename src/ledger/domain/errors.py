"""The domain's error hierarchy. The API maps each class to one HTTP status."""

from __future__ import annotations


class DomainError(Exception):
    """A command was refused; nothing was recorded."""

    title = "Command refused"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class InvalidCommand(DomainError):
    """The command's arguments break a rule of the domain (HTTP 422)."""

    title = "Invalid command"


class NotFound(DomainError):
    """The command names something that does not exist (HTTP 404)."""

    title = "Not found"


class Conflict(DomainError):
    """The command conflicts with the current state (HTTP 409)."""

    title = "Conflict"


class InsufficientCredits(DomainError):
    """The account's available credits do not cover the command (HTTP 402)."""

    title = "Insufficient credits"

    def __init__(self, required: int, available: int) -> None:
        super().__init__(
            f"{required} credits required, {available} available", field="credits"
        )
        self.required = required
        self.available = available


class UnknownReservation(NotFound):
    title = "Unknown reservation"


class ReservationSettled(Conflict):
    title = "Reservation already settled"


class ReservationExpired(Conflict):
    title = "Reservation expired"


class UnknownCharge(NotFound):
    title = "Unknown charge"


class RefundExceedsCharge(InvalidCommand):
    title = "Refund exceeds charge"


class VersionConflict(Conflict):
    """An If-Match precondition named a version that is no longer current."""

    title = "Version conflict"
