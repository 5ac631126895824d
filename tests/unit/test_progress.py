"""The progress helper: plain lines off a terminal, a tqdm bar with rate and ETA on one."""

from __future__ import annotations

import io

from ledger.progress import Progress


def test_plain_lines_off_a_terminal() -> None:
    out = io.StringIO()
    with Progress("demo", total=200, unit="commands", stream=out) as bar:
        for _ in range(200):
            bar.advance()
    lines = out.getvalue().splitlines()
    assert len(lines) == 10  # 10%..90%, then the closing line
    assert lines[0].startswith("demo: 20/200 commands (10%), ")
    assert "commands/s" in lines[0]
    assert "left" in lines[0]
    assert lines[-1].startswith("demo: 200 commands in ")
    assert "\r" not in out.getvalue()


def test_a_callable_of_position_and_head() -> None:
    out = io.StringIO()
    bar = Progress("rebuild", unit="events", stream=out)
    bar(500, 1000)  # projections.runner.Progress: the head becomes the total
    bar(1000, 1000)
    bar.close()
    assert bar.total == 1000
    assert out.getvalue().splitlines()[0].startswith("rebuild: 500/1,000 events (50%)")


def test_a_bar_with_rate_and_eta_on_a_terminal() -> None:
    out = io.StringIO()
    with Progress("verify", total=1000, unit="events", stream=out, tty=True) as bar:
        for _ in range(10):
            bar.advance(100)
    text = out.getvalue()
    assert "\r" in text  # redrawn in place
    assert "verify: 100%" in text
    assert "1.00k/1.00k" in text
    assert "events/s" in text  # the rate; tqdm shows the time left as [elapsed<left]
    assert "<" in text
