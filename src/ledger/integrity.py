"""Verifying the audit chain (see ledger.chain): recompute every seal and link, and say
where the stored log departs from what the ledger wrote.

The events and the links are read side by side in notification order, up to the heads
both had when verification began (a transaction stores its events and their links
together, so rows written meanwhile are left for the next run). Each finding names the
notification id and, where known, the aggregate and version:

* ``edited``: the event's topic or state is not what was sealed at that position;
* ``moved``: the position holds another aggregate's event than the one sealed there
  (rows swapped or renumbered);
* ``deleted``: the event row is gone, its link remains;
* ``break``: the link does not follow the previous one: rows (and their links) between
  the two were deleted;
* ``forged``: neither the row nor its link was written by the ledger (a row inserted
  into both tables);
* ``unchained``: an event without a link (inserted past the ledger's recorder);
* ``unverifiable``: links sealed with a key LEDGER_SECRET_KEY no longer holds;
* ``anchor``: a link recorded earlier as an anchor (id and hash) is no longer there.

The kind is a diagnosis; the detection and the position do not depend on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from eventsourcing.persistence import Notification

from ledger.chain import GENESIS, ChainKeys, Link
from ledger.recorders import chained
from ledger.store import LedgerStore

PAGE = 2000
T = TypeVar("T")
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ChainProblem:
    kind: str
    notification_id: int
    originator_id: str | None
    originator_version: int | None
    detail: str

    def __str__(self) -> str:
        where = f"notification {self.notification_id}"
        if self.originator_id is not None:
            where += f" ({self.originator_id} v{self.originator_version})"
        return f"{self.kind} at {where}: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "notification_id": self.notification_id,
                "originator_id": self.originator_id,
                "originator_version": self.originator_version, "detail": self.detail}


@dataclass
class ChainReport:
    problems: list[ChainProblem] = field(default_factory=list)
    events: int = 0  # event rows read
    links: int = 0  # links read
    head: Link | None = None  # the last link: publish (id, hash) elsewhere to anchor
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self, limit: int | None = None) -> dict[str, Any]:
        return {"ok": self.ok, "events": self.events, "links": self.links,
                "head": None if self.head is None else {
                    "notification_id": self.head.notification_id,
                    "hash": self.head.hash.hex()},
                "seconds": round(self.seconds, 3), "count": len(self.problems),
                "problems": [p.as_dict() for p in self.problems[:limit]]}


def parse_anchor(text: str) -> tuple[int, bytes]:
    """`<notification id>:<hash hex>`, as `head` gives them."""
    nid, _, digest = text.partition(":")
    try:
        return int(nid), bytes.fromhex(digest)
    except ValueError:
        raise ValueError(f"an anchor is <notification id>:<hash hex>, not {text!r}") from None


def verify_chain(store: LedgerStore, *, anchors: Sequence[tuple[int, bytes]] = (),
                 progress: Progress | None = None, page: int = PAGE) -> ChainReport:
    """Recompute the chain of the whole log; the report lists every problem found."""
    started = time.perf_counter()
    recorder = chained(store.recorder)
    assert recorder.keys is not None
    last_event, last_link = recorder.chain_heads()
    stop = max(last_event, last_link)
    events = _paged(lambda after: store.recorder.select_notifications(
        after, page, stop, inclusive_of_start=False), lambda n: n.id)
    links = _paged(lambda after: recorder.select_links(after, stop, page),
                   lambda k: k.notification_id)
    walk = _Walk(recorder.keys, dict(anchors))
    for n, event, link in _merged(events, links):
        walk.step(n, event, link)
        if progress is not None and n % page == 0:
            progress(n, stop)
    report = walk.finish()
    report.seconds = time.perf_counter() - started
    return report


class _Walk:
    """The verifier's state while it walks the log."""

    def __init__(self, keys: ChainKeys, anchors: dict[int, bytes]) -> None:
        self.keys = keys
        self.anchors = anchors
        self.report = ChainReport()
        self.previous: tuple[int, bytes] = (0, GENESIS)  # the link before this one
        self.trusted: tuple[int, bytes] = (0, GENESIS)  # the last link that followed
        self.unknown: dict[str, list[int]] = {}  # key id -> notification ids

    def problem(self, kind: str, n: int, oid: Any, version: int | None, detail: str) -> None:
        self.report.problems.append(ChainProblem(
            kind, n, None if oid is None else str(oid), version, detail))

    def step(self, n: int, event: Notification | None, link: Link | None) -> None:
        r = self.report
        r.events += event is not None
        if link is None:
            assert event is not None
            self.problem("unchained", n, event.originator_id, event.originator_version,
                         "an event row without a link: stored past the ledger's recorder")
            return
        r.links += 1
        r.head = link
        if (anchor := self.anchors.pop(n, None)) is not None and anchor != link.hash:
            self.problem("anchor", n, link.originator_id, link.originator_version,
                         f"the link's hash is {link.hash.hex()}, the anchor says "
                         f"{anchor.hex()}: the chain was rewritten up to here")
        key = self.keys.by_id.get(link.key_id)
        if key is None:
            self.unknown.setdefault(link.key_id, []).append(n)
            self.previous = self.trusted = (n, link.hash)
            return
        where = (link.originator_id, link.originator_version)
        linked = link.hash == key.link(self.previous[1], link.seal, *where)
        if not linked and self.trusted != self.previous:
            # Does it follow the last link that did? Then the rows in between were
            # slipped in (each already reported), and nothing is missing here.
            linked = link.hash == key.link(self.trusted[1], link.seal, *where)
        sealed = event is not None and link.seal == key.seal(
            n, event.originator_id, event.originator_version, event.topic, event.state)
        if event is None:
            self.problem("deleted", n, *where, "the event row is gone; its link remains")
        elif not sealed and not linked:
            self.problem("forged", n, event.originator_id, event.originator_version,
                         "neither this row nor its link was written by the ledger")
        elif not sealed and (event.originator_id, event.originator_version) != where:
            self.problem("moved", n, event.originator_id, event.originator_version,
                         f"{link.originator_id} v{link.originator_version} was stored at "
                         "this position")
        elif not sealed:
            self.problem("edited", n, *where,
                         "the stored topic or state differs from what was sealed")
        if not linked and (sealed or event is None):
            self.problem("break", n, *where,
                         f"the link does not follow the one at notification "
                         f"{self.trusted[0]}: rows after it and before this one were "
                         "deleted")
        self.previous = (n, link.hash)
        if linked:
            self.trusted = self.previous

    def finish(self) -> ChainReport:
        for key_id, ids in self.unknown.items():
            self.problem("unverifiable", ids[0], None, None,
                         f"{len(ids)} link(s) from notification {ids[0]} to {ids[-1]} were "
                         f"sealed with key {key_id}, which LEDGER_SECRET_KEY does not hold")
        for n, digest in sorted(self.anchors.items()):
            self.problem("anchor", n, None, None,
                         f"no link at the anchored position (anchor hash {digest.hex()}): "
                         "rows were deleted")
        self.report.problems.sort(key=lambda p: p.notification_id)
        return self.report


def _paged(fetch: Callable[[int], Sequence[T]], position: Callable[[T], int]
           ) -> Iterator[T]:
    after = 0
    while rows := fetch(after):
        yield from rows
        after = position(rows[-1])


def _merged(events: Iterator[Notification], links: Iterator[Link]
            ) -> Iterator[tuple[int, Notification | None, Link | None]]:
    """The two streams side by side, by notification id."""
    event, link = next(events, None), next(links, None)
    while event is not None or link is not None:
        n = min(([event.id] if event is not None else [])
                + ([link.notification_id] if link is not None else []))
        this_event = event if event is not None and event.id == n else None
        this_link = link if link is not None and link.notification_id == n else None
        if this_event is not None:
            event = next(events, None)
        if this_link is not None:
            link = next(links, None)
        yield n, this_event, this_link
