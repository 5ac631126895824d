"""Progress of long command-line work (rebuild, verify, demo).

On a terminal: a bar with the rate and the time left, drawn by tqdm. Otherwise (a log
file, CI, a pipe): plain lines, one each time another tenth of the work is done, and a
last one with the total time and rate; no carriage returns, no escape codes.

`Progress` is also a `(done, total)` callable, the shape `projections.runner.Progress`
takes, so it can be passed straight to a rebuild or a verification:

    with Progress("rebuild", unit="events") as bar:
        projections.rebuild(progress=bar)

    with Progress("demo", total=len(work), unit="commands") as bar:
        for item in work:
            do(item)
            bar.advance()
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any, TextIO

from tqdm import tqdm

STEPS = 10  # plain output: a line per tenth of the work


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """A progress bar on a terminal, plain lines elsewhere (see the module's doc)."""

    def __init__(self, label: str, total: int | None = None, *, unit: str = "items",
                 stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream or sys.stderr
        self.done = 0
        self.started = time.monotonic()
        self._step = 0  # the last tenth reported in plain output
        interactive = self.stream.isatty() if tty is None else tty
        self._bar: tqdm[Any] | None = tqdm(
            total=total, desc=label, unit=unit, unit_scale=True, file=self.stream,
            dynamic_ncols=True, leave=True, mininterval=0.2) if interactive else None

    # -- reporting ----------------------------------------------------------------------

    def advance(self, n: int = 1) -> None:
        """`n` more items are done."""
        self.update(self.done + n)

    def update(self, done: int, total: int | None = None) -> None:
        """`done` items (of `total`, when it changed) are done."""
        if total is not None and total != self.total:
            self.total = total
            if self._bar is not None:
                self._bar.total = total
        if self._bar is not None:
            self._bar.update(done - self.done)
        self.done = done
        if self._bar is None:
            self._plain()

    __call__ = update  # projections.runner.Progress: (position, head)

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def eta(self) -> float | None:
        """Seconds left at the rate so far; None before there is a rate or a total."""
        rate = self.rate()
        if self.total is None or rate <= 0:
            return None
        return max(self.total - self.done, 0) / rate

    def _plain(self) -> None:
        if not self.total:
            return
        step = min(self.done * STEPS // self.total, STEPS)
        if step <= self._step or step >= STEPS:  # the last line is close()'s
            return
        self._step = step
        eta = self.eta()
        self._line(f"{self.done:,}/{self.total:,} {self.unit} ({step * 100 // STEPS}%), "
                   f"{self.rate():,.0f} {self.unit}/s"
                   + ("" if eta is None else f", about {_duration(eta)} left"))

    def _line(self, text: str) -> None:
        self.stream.write(f"{self.label}: {text}\n")
        self.stream.flush()

    # -- the end ------------------------------------------------------------------------

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            return
        elapsed = time.monotonic() - self.started
        self._line(f"{self.done:,} {self.unit} in {_duration(elapsed)} "
                   f"({self.rate():,.0f} {self.unit}/s)")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
