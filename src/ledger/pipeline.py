"""The write pipeline: every command of the service goes through here.

Why: a straightforward get-command-save per request reloads the aggregate each time,
races its neighbours into optimistic-concurrency retries, and pays one transaction (and
one EXCLUSIVE table lock on PostgreSQL) per command. Here instead

* commands are routed to a writer thread by their aggregate id, so the commands of one
  account run one after another (no lost update, no retry storm on a hot account);
* each writer keeps the aggregates it owns in an LRU cache (no reload per command);
* a writer takes every command waiting for it, runs them in order against the cached
  aggregates and saves all their events in ONE transaction (group commit), then
  answers each caller. A caller is answered only after its events are committed.

Correctness does not rest on the cache: the event store's uniqueness of
(aggregate, version) refuses a stale write. When a batch's save fails that way
(another process wrote the same aggregate), its aggregates are evicted and each command
is run again alone on fresh state. A refusal (e.g. insufficient credits) decided on a
cached aggregate is confirmed on fresh state before it is returned.

Idempotency keys are recorded as aggregates in the same transaction as the command
they belong to (see ledger.domain.idempotency).
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from uuid import UUID

from eventsourcing.persistence import IntegrityError, PersistenceError

from ledger.domain.base import Actor
from ledger.domain.errors import Conflict, DomainError
from ledger.domain.idempotency import IdempotencyRecord
from ledger.store import LedgerStore, LockedWrite

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_ATTEMPTS = 5


class IdempotencyConflict(Conflict):
    title = "Idempotency key reused"


@dataclass(frozen=True)
class IdempotencySpec:
    """What the API knows of a request that carries an Idempotency-Key."""

    scope: str  # who may replay: the caller's key id
    key: str
    fingerprint: str  # hash of method, path and canonical body

    @staticmethod
    def fingerprint_of(*parts: bytes | str) -> str:
        h = hashlib.sha256()
        for part in parts:
            h.update(part.encode() if isinstance(part, str) else part)
            h.update(b"\0")
        return h.hexdigest()


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What a command returned, and where its last event stands in the log."""

    value: T
    position: int
    replayed: bool = False  # answered from an idempotency record


@dataclass
class Command:
    key: UUID  # the aggregate it is serialized on
    run: Callable[[Batch], Any]
    respond: Callable[[Any], tuple[int, dict[str, Any]]] | None
    idempotency: IdempotencySpec | None
    actor: Actor
    future: Future[Outcome[Any]] = field(default_factory=Future)
    # the submitter's context vars (the ledger's clock): the command runs in them
    context: contextvars.Context = field(default_factory=contextvars.copy_context)


class _Poisoned(Exception):
    """A command failed after it had changed an aggregate: its batch cannot be saved."""


class Batch:
    """The aggregates a group of commands works on, with their pending events."""

    def __init__(self, writer: Writer) -> None:
        self._writer = writer
        self.aggregates: dict[UUID, Any] = {}
        self.fresh: set[UUID] = set()
        self.new_records: list[Any] = []
        self.touched: set[UUID] = set()

    def get(self, aggregate_id: UUID, create: Callable[[], Any] | None = None) -> Any:
        """The aggregate, or the one `create` opens if it does not exist yet."""
        self.touched.add(aggregate_id)
        agg = self.aggregates.get(aggregate_id)
        if agg is not None:
            return agg
        agg = self._writer.cache_get(aggregate_id)
        if agg is None:
            agg = self._writer.store.find(aggregate_id)
            self.fresh.add(aggregate_id)
            if agg is None:
                if create is None:
                    return None
                agg = create()
        self.aggregates[aggregate_id] = agg
        return agg

    def find(self, aggregate_id: UUID) -> Any | None:
        return self.get(aggregate_id)

    def add(self, aggregate: Any) -> Any:
        self.touched.add(aggregate.id)
        self.aggregates[aggregate.id] = aggregate
        return aggregate

    def pending(self) -> int:
        return sum(len(a.pending_events) for a in self.aggregates.values())

    def refresh_stale(self, ids: set[UUID]) -> bool:
        """Bring cached aggregates up to date; True when any had fallen behind."""
        changed = False
        for aggregate_id in ids - self.fresh:
            agg = self.aggregates.get(aggregate_id)
            if agg is None or agg.pending_events:
                continue
            newer = self._writer.store.events_of(aggregate_id, gt=agg.version)
            for event in newer:
                event.mutate(agg)
            self.fresh.add(aggregate_id)
            changed = changed or bool(newer)
        return changed


class Writer:
    """One writer thread, its queue and its cache."""

    def __init__(self, pipeline: Pipeline, index: int) -> None:
        self.pipeline = pipeline
        self.store = pipeline.store
        self.queue: queue.SimpleQueue[Command | None] = queue.SimpleQueue()
        self.cache: OrderedDict[UUID, Any] = OrderedDict()
        self.thread = threading.Thread(target=self._loop, name=f"ledger-writer-{index}",
                                       daemon=True)
        self.thread.start()

    # -- cache -------------------------------------------------------------------------

    def cache_get(self, aggregate_id: UUID) -> Any | None:
        agg = self.cache.get(aggregate_id)
        if agg is not None:
            self.cache.move_to_end(aggregate_id)
        return agg

    def _cache_put(self, aggregates: dict[UUID, Any]) -> None:
        for aggregate_id, agg in aggregates.items():
            self.cache[aggregate_id] = agg
            self.cache.move_to_end(aggregate_id)
        while len(self.cache) > self.pipeline.cache_size:
            self.cache.popitem(last=False)

    def _evict(self, ids: set[UUID]) -> None:
        for aggregate_id in ids:
            self.cache.pop(aggregate_id, None)

    # -- loop --------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                return
            commands = [first]
            stop = False
            idle_rounds = 0
            # Group commit: take what is waiting; while more keeps arriving, yield the
            # GIL briefly so that callers woken by the previous commit can join this one.
            while len(commands) < self.pipeline.max_batch and idle_rounds < 2:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    idle_rounds += 1
                    time.sleep(0)
                    continue
                if nxt is None:
                    stop = True
                    break
                commands.append(nxt)
                idle_rounds = 0
            try:
                self._process(commands)
            except Exception as exc:  # never let the writer die with callers waiting
                log.exception("writer failed a batch")
                for cmd in commands:
                    if not cmd.future.done():
                        cmd.future.set_exception(exc)
            if stop:
                return

    def _process(self, commands: list[Command]) -> None:
        pending = self._answer_known_keys(commands)
        if not pending:
            return
        if len(pending) > 1:
            try:
                self._run_batch(pending, lookup_keys=False)
                return
            except (IntegrityError, _Poisoned):
                pass  # fall back to one command at a time, on fresh state
        for cmd in pending:
            self._run_alone(cmd)

    def _answer_known_keys(self, commands: list[Command]) -> list[Command]:
        rest = []
        seen: dict[tuple[str, str], Command] = {}
        for cmd in commands:
            spec = cmd.idempotency
            if spec is not None:
                known = self.pipeline.known_keys.get((spec.scope, spec.key))
                if known is not None:
                    self._answer_from_record(cmd, *known)
                    continue
                if (spec.scope, spec.key) in seen:  # a duplicate within this batch
                    rest.append(cmd)  # it will be answered from the record when run alone
                    continue
                seen[(spec.scope, spec.key)] = cmd
            rest.append(cmd)
        return rest

    def _answer_from_record(self, cmd: Command, fingerprint: str, status: int,
                            body: dict[str, Any]) -> None:
        assert cmd.idempotency is not None
        if fingerprint != cmd.idempotency.fingerprint:
            cmd.future.set_exception(IdempotencyConflict(
                "this Idempotency-Key was used with a different request",
                field="Idempotency-Key"))
        else:
            cmd.future.set_result(Outcome((status, body), self.store.head(), replayed=True))

    def _run_alone(self, cmd: Command) -> None:
        for _attempt in range(MAX_ATTEMPTS):
            try:
                self._run_batch([cmd], lookup_keys=True)
                return
            except IntegrityError:
                continue
            except _Poisoned as exc:
                cmd.future.set_exception(exc.__cause__ or exc)
                return
        cmd.future.set_exception(Conflict("too much contention on this account; retry",
                                          field=None))

    def _run_batch(self, commands: list[Command], *, lookup_keys: bool) -> None:
        batch = Batch(self)
        results: list[tuple[Command, Any, BaseException | None]] = []
        try:
            if self.store.serializes_writes:
                # PostgreSQL: take the table lock first, bring the cached aggregates up
                # to date under it, then decide and insert: no other process can write
                # in between, so a cache shared by nobody is never stale here.
                with self.store.locked_write() as tx:
                    self._fast_forward(batch, tx, commands)
                    results = self._execute(batch, commands, lookup_keys)
                    ids = tx.insert([*batch.aggregates.values(), *batch.new_records])
            else:
                results = self._execute(batch, commands, lookup_keys)
                recordings = self.store.record(*batch.aggregates.values(), *batch.new_records)
                ids = [r.notification.id for r in recordings]
        except (IntegrityError, _Poisoned):
            self._evict(batch.touched)
            raise
        except PersistenceError as exc:
            self._evict(batch.touched)
            for cmd in commands:
                if not cmd.future.done():
                    cmd.future.set_exception(exc)
            return
        except Exception:
            self._evict(batch.touched)
            raise
        position = max(ids) if ids else self.store.head()
        self._cache_put(batch.aggregates)
        for rec in batch.new_records:
            self.pipeline.remember_key(rec)
        for cmd, value, error in results:
            if isinstance(value, IdempotencyRecord):
                self._answer_from_record(cmd, value.fingerprint, value.status, value.body)
            elif error is not None:
                cmd.future.set_exception(error)
            else:
                cmd.future.set_result(Outcome(value, position))
        self._maybe_snapshot(batch.aggregates.values())

    def _fast_forward(self, batch: Batch, tx: LockedWrite, commands: list[Command]) -> None:
        """Apply what other processes stored since we cached the commands' aggregates."""
        cached = {cmd.key: agg for cmd in commands
                  if (agg := self.cache.get(cmd.key)) is not None}
        for event in tx.newer_events({k: a.version for k, a in cached.items()}):
            event.mutate(cached[event.originator_id])
        batch.fresh.update(cached)

    def _execute(self, batch: Batch, commands: list[Command],
                 lookup_keys: bool) -> list[tuple[Command, Any, BaseException | None]]:
        results: list[tuple[Command, Any, BaseException | None]] = []
        for cmd in commands:
            if lookup_keys and cmd.idempotency is not None:
                spec = cmd.idempotency
                rec = self.store.find(IdempotencyRecord.create_id(spec.scope, spec.key))
                if rec is not None:
                    self.pipeline.remember_key(rec)
                    results.append((cmd, rec, None))
                    continue
            value, error = self._run_one(batch, cmd)
            results.append((cmd, value, error))
        return results

    def _run_one(self, batch: Batch, cmd: Command) -> tuple[Any, BaseException | None]:
        before = batch.pending()
        touched_before = set(batch.touched)
        batch.touched = set()
        try:
            for attempt in range(2):
                try:
                    value = cmd.context.run(cmd.run, batch)
                    break
                except DomainError:
                    if batch.pending() != before:
                        raise
                    # Confirm a refusal on fresh state before returning it.
                    if attempt == 0 and batch.refresh_stale(batch.touched):
                        continue
                    raise
        except DomainError as exc:
            if batch.pending() != before:
                raise _Poisoned() from exc
            return None, exc
        except Exception as exc:
            if batch.pending() != before:
                raise _Poisoned() from exc
            return None, exc
        finally:
            batch.touched |= touched_before
        if cmd.respond is not None:
            value = cmd.respond(value)
            spec = cmd.idempotency
            if spec is not None:
                status, body = value
                batch.new_records.append(IdempotencyRecord.record(
                    spec.scope, spec.key, spec.fingerprint, status, body, cmd.actor))
        return value, None

    def _maybe_snapshot(self, aggregates: Any) -> None:
        due = [a for a in aggregates if self._snapshot_due(a)]
        if due:
            try:
                self.store.snapshot(due)
            except PersistenceError:
                log.warning("snapshot failed; it will be taken later", exc_info=True)

    def _snapshot_due(self, agg: Any) -> bool:
        interval = self.pipeline.snapshot_interval
        last = self.pipeline.snapshotted.get(agg.id, 0)
        if interval and agg.version - last >= interval:
            self.pipeline.snapshotted[agg.id] = agg.version
            return True
        return False


class Pipeline:
    """Routes commands to writer threads by aggregate id and waits for their outcome."""

    def __init__(self, store: LedgerStore, *, writers: int = 1, max_batch: int = 256,
                 cache_size: int = 10_000, snapshot_interval: int = 200,
                 timeout_s: float = 30.0) -> None:
        self.store = store
        self.max_batch = max_batch
        self.cache_size = cache_size
        self.snapshot_interval = snapshot_interval
        self.timeout_s = timeout_s
        self.snapshotted: dict[UUID, int] = {}
        self.known_keys: OrderedDict[tuple[str, str], tuple[str, int, dict[str, Any]]] = (
            OrderedDict())
        self._keys_lock = threading.Lock()
        self._writers = [Writer(self, i) for i in range(max(1, writers))]

    def submit(
        self,
        key: UUID,
        run: Callable[[Batch], T],
        actor: Actor,
        *,
        idempotency: IdempotencySpec | None = None,
        respond: Callable[[T], tuple[int, dict[str, Any]]] | None = None,
    ) -> Outcome[Any]:
        """Run `run` on the writer that owns `key`; return once its events are committed.

        `respond` turns the result into the (status, body) pair that is the outcome's
        value, and that a retry with the same idempotency key gets back (required with
        `idempotency`).
        """
        if idempotency is not None and respond is None:
            raise ValueError("an idempotent command needs respond()")
        cmd = Command(key=key, run=run, respond=respond, idempotency=idempotency, actor=actor)
        self._writers[key.int % len(self._writers)].queue.put(cmd)
        return cmd.future.result(timeout=self.timeout_s)

    def remember_key(self, rec: IdempotencyRecord) -> None:
        with self._keys_lock:
            self.known_keys[(rec.scope, rec.key)] = (rec.fingerprint, rec.status, rec.body)
            self.known_keys.move_to_end((rec.scope, rec.key))
            while len(self.known_keys) > 100_000:
                self.known_keys.popitem(last=False)

    def evict(self, key: UUID) -> None:
        """Forget a cached aggregate (used by tests and admin tools)."""
        self._writers[key.int % len(self._writers)].cache.pop(key, None)

    def close(self) -> None:
        for w in self._writers:
            w.queue.put(None)
        for w in self._writers:
            w.thread.join(timeout=5)
