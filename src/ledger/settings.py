"""Settings: the global singleton, account / integration / site / user documents, and the
effective view that merges them with the source of every value.

Merge order (a lower level wins): default (the schemas' defaults) -> global -> account
(integration overrides and account settings keys) -> site (tabs) -> user (settings keys).
Within a level a universal image setting is applied before the per-integration ones it
feeds (``image_quality`` sets every image integration's quality, ``dalle_image_quality``
then overrides DALL-E's), so the most specific value of the lowest level wins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any
from uuid import UUID

from ledger.config import Settings
from ledger.domain.base import Actor, utcnow
from ledger.domain.errors import InvalidCommand, NotFound
from ledger.domain.settings import GlobalIntegrationSettings, Provenanced, Scope, SettingsDocument
from ledger.history import state_at
from ledger.pipeline import Batch, IdempotencySpec, Outcome, Pipeline
from ledger.registry import ModelRegistry, check_version
from ledger.secrets import SecretBox, SecretUnreadable
from ledger.settings_schemas import (
    ACCOUNT_SCHEMAS,
    IMAGE_INTEGRATIONS,
    INTEGRATION_MODELS,
    INTEGRATION_OVERRIDES,
    INTEGRATIONS,
    SECRET_FIELDS,
    SETTINGS_SCHEMAS,
    SITE_TABS,
    GlobalSettings,
    Schema,
    parse,
    schema_defaults,
    validated,
)
from ledger.store import LedgerStore

Respond = Callable[[Any], tuple[int, dict[str, Any]]]
SCHEMAS: dict[Scope, dict[str, type[Schema]]] = {
    Scope.ACCOUNT: ACCOUNT_SCHEMAS,
    Scope.INTEGRATION: INTEGRATION_OVERRIDES,
    Scope.SITE: SITE_TABS,
    Scope.USER: SETTINGS_SCHEMAS,
}
GLOBAL_DEFAULTS: dict[str, Any] = GlobalSettings().model_dump(mode="json",
                                                             exclude=set(SECRET_FIELDS))
# A universal setting and the per-integration values it feeds.
FEEDS = {"image_quality": [f"{p}_image_quality" for p in IMAGE_INTEGRATIONS],
         "image_style": [f"{p}_image_style" for p in IMAGE_INTEGRATIONS],
         "desktop_image_size": [f"{p}_image_size" for p in IMAGE_INTEGRATIONS]}
# The effective names of the integration parameters and universal defaults.
MERGED = set(GLOBAL_DEFAULTS) | {n for names in FEEDS.values() for n in names}
# The API keys an integration falls back to when it has none of its own.
KEY_FALLBACK = {"dalle": "openai"}


@dataclass(frozen=True)
class Source:
    """Where an effective value comes from."""

    level: str  # default | global | account | site | user
    aggregate_id: UUID | None
    version: int | None
    changed_at: datetime | None
    field: str  # where the value is kept at that level

    def as_dict(self) -> dict[str, Any]:
        return {"level": self.level, "aggregate_id": self.aggregate_id and str(
            self.aggregate_id), "version": self.version, "changed_at": self.changed_at,
            "field": self.field}


@dataclass(frozen=True)
class Saved:
    """A settings document right after a write."""

    document: SettingsDocument
    created: bool
    dropped: list[str]  # fields left out of an integration override (API keys among them)


@dataclass
class Effective:
    account_id: str
    user_id: str | None
    site_id: str | None
    as_of: datetime | None
    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)

    def put(self, name: str, value: Any, source: Source) -> None:
        for target in (name, *FEEDS.get(name, ())):
            self.values[target] = value
            self.sources[target] = source

    def put_all(self, entries: list[tuple[str, Any, Source]]) -> None:
        """One level's values, universal ones first (they feed the specific ones)."""
        for name, value, source in sorted(entries, key=lambda e: e[0] not in FEEDS):
            self.put(name, value, source)


def _leaves(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    """Nested objects flattened to dotted names (lists stay whole)."""
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from _leaves(f"{prefix}.{k}", v)
    else:
        yield prefix, value


def _source(level: str, agg: Provenanced, name: str, where: str) -> Source:
    version, when = agg.changed_at(name)
    return Source(level, agg.id, version, when, where)


class SettingsService:
    def __init__(self, store: LedgerStore, pipeline: Pipeline, registry: ModelRegistry,
                 settings: Settings) -> None:
        self.store = store
        self.pipeline = pipeline
        self.registry = registry
        self._settings = settings

    @cached_property
    def box(self) -> SecretBox:
        """Built on first use: a process that never touches a secret needs no key."""
        return SecretBox.from_settings(self._settings)

    # -- global ------------------------------------------------------------------------

    def seed(self, actor: Actor) -> int:
        """Create the global settings with the seed's defaults, unless they exist."""
        if self.global_settings() is not None:
            return 0
        self.put_global({}, actor)
        return 1

    def global_settings(self, as_of: datetime | None = None
                        ) -> GlobalIntegrationSettings | None:
        found: GlobalIntegrationSettings | None = state_at(
            self.store, GlobalIntegrationSettings.create_id(), as_of)
        return found

    def global_view(self, settings: GlobalIntegrationSettings | None) -> dict[str, Any]:
        """Every global field (defaults where never set), API keys masked."""
        values = {} if settings is None else settings.values
        view = {**GLOBAL_DEFAULTS, **{k: v for k, v in values.items()
                                      if k not in SECRET_FIELDS}}
        return {**view, **{k: self.box.mask_sealed(values.get(k)) for k in SECRET_FIELDS}}

    def put_global(self, values: dict[str, Any], actor: Actor, *, if_match: int | None = None,
                   idem: IdempotencySpec | None = None,
                   respond: Respond | None = None) -> Outcome[Any]:
        """Partial update of the global settings; API keys are sealed before any event.
        422 on a bad field or a model that is not usable for its integration; 409 on a
        stale If-Match."""
        parsed = parse(GlobalSettings, values)
        given = parsed.model_fields_set
        plain = parsed.model_dump(mode="json", include=given - set(SECRET_FIELDS))
        self._check_models({p: plain.get(f"{p}_model") for p in INTEGRATIONS}, "{}_model")
        keys = {k: (s.get_secret_value() or None) if (s := getattr(parsed, k)) else None
                for k in given & set(SECRET_FIELDS)}
        gid = GlobalIntegrationSettings.create_id()

        def run(batch: Batch) -> GlobalIntegrationSettings:
            current: GlobalIntegrationSettings | None = batch.find(gid)
            check_version(current, if_match)
            stored = {} if current is None else current.values
            changes = {**plain, **{k: self._sealed_unless_same(stored.get(k), v)
                                   for k, v in keys.items()}}
            if current is None:
                current = GlobalIntegrationSettings.configure(
                    {**GLOBAL_DEFAULTS, **changes}, list(SECRET_FIELDS), actor)
                batch.add(current)
                return current
            current.change(changes, actor)
            return current

        return self.pipeline.submit(gid, run, actor, idempotency=idem, respond=respond)

    def _sealed_unless_same(self, stored: str | None, plaintext: str | None) -> str | None:
        if plaintext is None:
            return None
        if stored is not None:
            try:
                if self.box.open(stored) == plaintext:
                    return stored
            except SecretUnreadable:
                pass
        return self.box.seal(plaintext)

    def provider_api_key(self, provider: str) -> str | None:
        """The decrypted API key of an integration (for the provider adapters only).
        DALL-E falls back to the OpenAI key."""
        current = self.global_settings()
        if current is None:
            return None
        for name in (provider, KEY_FALLBACK.get(provider)):
            sealed = current.values.get(f"{name}_api_key") if name else None
            if sealed is not None:
                return self.box.open(sealed)
        return None

    def rotate(self, actor: Actor) -> list[str]:
        """Seal every stored API key again under the current (first) key; returns the
        fields resealed. See ledger.secrets for the whole rotation."""
        gid = GlobalIntegrationSettings.create_id()

        def run(batch: Batch) -> list[str]:
            current: GlobalIntegrationSettings | None = batch.find(gid)
            if current is None:
                return []
            resealed = {k: new for k in SECRET_FIELDS
                        if (old := current.values.get(k)) is not None
                        and (new := self.box.reseal(old)) is not None}
            current.reseal(resealed, actor)
            return sorted(resealed)

        value: list[str] = self.pipeline.submit(gid, run, actor).value
        return value

    # -- documents ---------------------------------------------------------------------

    def document(self, scope: Scope, account_id: str, subject: str, key: str,
                 as_of: datetime | None = None) -> SettingsDocument | None:
        self.schema(scope, key, missing=NotFound)
        doc: SettingsDocument | None = state_at(
            self.store, SettingsDocument.create_id(scope, account_id, subject, key), as_of)
        return doc

    def documents(self, scope: Scope, account_id: str, subject: str,
                  as_of: datetime | None = None) -> list[SettingsDocument]:
        return [d for key in SCHEMAS[scope]
                if (d := self.document(scope, account_id, subject, key, as_of)) is not None]

    @staticmethod
    def schema(scope: Scope, key: str,
               missing: type[InvalidCommand] | type[NotFound] = InvalidCommand) -> type[Schema]:
        try:
            return SCHEMAS[scope][key]
        except KeyError:
            raise missing(f"unknown {scope.value} settings key; known: "
                          f"{', '.join(SCHEMAS[scope])}", field="key") from None

    def put_document(self, scope: Scope, account_id: str, subject: str, key: str,
                     value: Any, actor: Actor, *, if_match: int | None = None,
                     idem: IdempotencySpec | None = None, respond: Respond | None = None,
                     dropped: list[str] | None = None) -> Outcome[Any]:
        """Create or replace one document (upsert on its natural key), after checking it
        against its schema: 422 names the failing path and nothing is recorded; 409 on
        a stale If-Match (If-Match "0" = only if absent)."""
        checked = validated(self.schema(scope, key), value)
        if scope is Scope.INTEGRATION:
            self._check_models({key: checked.get("model")}, "value.model")
        elif (scope is Scope.SITE and key == "integrations") or (
                scope is Scope.USER and key == "ai_settings"):
            overrides = checked if key == "integrations" else checked.get("integrations", {})
            self._check_models({p: o.get("model") for p, o in overrides.items()},
                               "value." + ("" if key == "integrations" else "integrations.")
                               + "{}.model")
        doc_id = SettingsDocument.create_id(scope, account_id, subject, key)
        dropped = dropped or []

        def run(batch: Batch) -> Saved:
            doc: SettingsDocument | None = batch.find(doc_id)
            check_version(doc, if_match)
            if doc is None:
                doc = SettingsDocument.save(scope, account_id, subject, key, checked, actor)
                batch.add(doc)
                return Saved(doc, True, dropped)
            doc.replace(checked, actor)
            return Saved(doc, False, dropped)

        return self.pipeline.submit(doc_id, run, actor, idempotency=idem, respond=respond)

    def put_integration(self, account_id: str, integration_type: str, value: dict[str, Any],
                        actor: Actor, *, if_match: int | None = None,
                        idem: IdempotencySpec | None = None,
                        respond: Respond | None = None) -> Outcome[Any]:
        """An account's override of one integration, by the seed's rule: only the allowed
        fields are kept; the rest, API keys among them, are dropped and listed in the
        result (404 for an unknown integration type)."""
        kept, dropped = self.allowed_override(integration_type, value)
        return self.put_document(Scope.INTEGRATION, account_id, "", integration_type, kept,
                                 actor, if_match=if_match, idem=idem, respond=respond,
                                 dropped=dropped)

    @staticmethod
    def allowed_override(integration_type: str, value: dict[str, Any]
                         ) -> tuple[dict[str, Any], list[str]]:
        """The seed's override rule: keep the allowed fields, drop the rest (API keys
        among them). Returns (kept, dropped field names)."""
        allowed = SettingsService.schema(Scope.INTEGRATION, integration_type,
                                         missing=NotFound).model_fields
        kept = {k: v for k, v in value.items() if k in allowed}
        return kept, sorted(k for k in value if k not in allowed)

    def _check_models(self, refs: dict[str, Any], where: str) -> None:
        """Each named model exists, is usable and belongs to its integration."""
        for integration, model_id in refs.items():
            if model_id is None:
                continue
            path = where.format(integration)
            provider, model_type = INTEGRATION_MODELS[integration]
            model = self.registry.find(model_id)
            if model is None or (model.provider, model.model_type) != (provider, model_type):
                raise InvalidCommand(f"{path}: {model_id!r} is not a registered {provider} "
                                     f"{model_type} model", field=path)
            if not model.is_active or model.is_deprecated(utcnow()):
                raise InvalidCommand(f"{path}: model {model_id!r} is inactive or deprecated",
                                     field=path)

    # -- the effective view ------------------------------------------------------------

    def effective(self, account_id: str, user_id: str | None = None,
                  site_id: str | None = None, as_of: datetime | None = None) -> Effective:
        """Global -> Account -> Site -> User merged, with the source of every value, as
        the settings stood at `as_of` (now if None)."""
        eff = Effective(account_id, user_id, site_id, as_of)
        default = [(n, v, Source("default", None, None, None, n))
                   for n, v in GLOBAL_DEFAULTS.items()]
        for key, schema in ACCOUNT_SCHEMAS.items():
            default += [(n, v, Source("default", None, None, None, n))
                        for n, v in _leaves(key, schema_defaults(schema))]
        if site_id is not None:
            default += [(n, v, Source("default", None, None, None, n))
                        for tab, schema in SITE_TABS.items()
                        for n, v in self._site_entries(tab, schema_defaults(schema))]
        eff.put_all(default)

        current = self.global_settings(as_of)
        if current is not None:
            eff.put_all([(n, v, _source("global", current, n, n))
                         for n, v in current.values.items() if n not in SECRET_FIELDS])

        level = []
        for doc in self.documents(Scope.INTEGRATION, account_id, "", as_of):
            level += [(f"{doc.key}_{n}", v, _source("account", doc, n,
                                                    f"integrations/{doc.key}.{n}"))
                      for n, v in doc.values.items()]
        for doc in self.documents(Scope.ACCOUNT, account_id, "", as_of):
            level += [(n, v, _source("account", doc, top, f"account/{n}"))
                      for top, tv in doc.values.items() for n, v in _leaves(
                          f"{doc.key}.{top}", tv)]
        eff.put_all(level)

        if site_id is not None:
            eff.put_all([(n, v, _source("site", doc, top, f"sites/{site_id}/{doc.key}.{top}"))
                         for doc in self.documents(Scope.SITE, account_id, site_id, as_of)
                         for top, tv in doc.values.items()
                         for n, v in self._site_entries(doc.key, {top: tv})])

        if user_id is not None:
            level = []
            for doc in self.documents(Scope.USER, account_id, user_id, as_of):
                for top, tv in doc.values.items():
                    src = _source("user", doc, top, f"user/{doc.key}.{top}")
                    if doc.key != "ai_settings":
                        level += [(n, v, src) for n, v in _leaves(f"{doc.key}.{top}", tv)]
                    elif top == "integrations":
                        level += [(n, v, src) for n, v in _overrides(tv)]
                    else:
                        level.append((top, tv, src))
            eff.put_all(level)
        return eff

    @staticmethod
    def _site_entries(tab: str, values: dict[str, Any]) -> list[tuple[str, Any]]:
        if tab == "integrations":
            return list(_overrides(values))
        entries: list[tuple[str, Any]] = []
        for top, v in values.items():
            entries += [(top, v)] if top in MERGED else _leaves(f"site.{tab}.{top}", v)
        return entries


def _overrides(overrides: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """{"openai": {"model": m}} as [("openai_model", m)]."""
    for integration, params in overrides.items():
        for name, v in (params or {}).items():
            yield f"{integration}_{name}", v
