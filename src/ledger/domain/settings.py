"""Settings at four levels: Global -> Account -> Site -> User.

* GlobalIntegrationSettings: the platform-wide singleton (flat fields: provider API keys,
  default models and parameters, image defaults). The only place an API key may live,
  and only sealed (encrypted before it reaches an event; see ledger.secrets).
* SettingsDocument: one JSON object at one scope, keyed by its natural key:
    scope        subject    key
    account      ""         settings key        AccountSettings
    integration  ""         integration type    IntegrationSettings overrides
    site         site id    tab                 SiteSettings
    user         user id    settings key        UserSettings
  A document never holds a field that looks like a secret, at any depth.

Both remember, per top-level field, the version and time of its last change: that is the
provenance the effective view reports for every value.

The shape of each value is checked by the application (ledger.settings_schemas) before a
command is issued; the domain keeps the invariants that must hold whatever the caller.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any

from ledger.domain.base import Actor, LedgerAggregate, natural_id
from ledger.domain.errors import InvalidCommand

SEALED_PREFIX = "fernet:"  # what a sealed secret looks like in an event
SECRET_NAME = re.compile(r"(api_?key|secret|password|passphrase|credential|access_?token"
                         r"|^token$|^key$)", re.IGNORECASE)
MAX_DEPTH = 8


class Scope(StrEnum):
    ACCOUNT = "account"
    INTEGRATION = "integration"
    SITE = "site"
    USER = "user"


def secret_fields(value: Any, path: str = "") -> list[str]:
    """The paths of the fields of `value` whose names look like secrets."""
    found: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            p = f"{path}.{k}" if path else str(k)
            if SECRET_NAME.search(str(k)):
                found.append(p)
            found += secret_fields(v, p)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += secret_fields(v, f"{path}[{i}]")
    return found


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


class Provenanced(LedgerAggregate):
    """An aggregate whose top-level fields each remember their last change."""

    values: dict[str, Any]
    changed: dict[str, list[Any]]  # field -> [version, time] (lists survive a snapshot)

    def _apply_values(self, new: dict[str, Any], event: Any) -> None:
        stamp = [event.originator_version, event.timestamp]
        self.changed = {
            **{k: v for k, v in self.changed.items() if k in new},
            **{k: stamp for k, v in new.items() if k not in self.values
               or self.values[k] != v},
        }
        self.values = dict(new)

    def changed_at(self, name: str) -> tuple[int, datetime]:
        """(version, time) of the last change of field `name`."""
        version, when = self.changed[name]
        return version, when


class GlobalIntegrationSettings(Provenanced):
    """The singleton. `secret_names` are the fields that hold sealed API keys."""

    class Configured(LedgerAggregate.Created):
        values: dict[str, Any]
        secret_names: list[str]

        def apply(self, settings: GlobalIntegrationSettings) -> None:
            settings._apply_values(self.values, self)

    class Changed(LedgerAggregate.Event):
        changes: dict[str, Any]  # only the fields that changed; None clears a field

        def apply(self, settings: GlobalIntegrationSettings) -> None:
            settings._apply_values({**settings.values, **self.changes}, self)

    class SecretsResealed(LedgerAggregate.Event):
        """The same secrets, sealed again under the current key (key rotation)."""

        sealed: dict[str, str]

        def apply(self, settings: GlobalIntegrationSettings) -> None:
            settings.values = {**settings.values, **self.sealed}

    def __init__(self, values: dict[str, Any], secret_names: list[str]) -> None:
        self.values = {}
        self.changed = {}
        self.secret_names = list(secret_names)

    @staticmethod
    def create_id() -> Any:
        return natural_id("settings-global")

    @classmethod
    def configure(cls, values: dict[str, Any], secret_names: list[str],
                  actor: Actor) -> GlobalIntegrationSettings:
        _check_sealed(values, secret_names)
        settings: GlobalIntegrationSettings = cls._open(
            cls.Configured, actor, values=values, secret_names=list(secret_names))
        return settings

    def change(self, values: dict[str, Any], actor: Actor) -> None:
        """Partial update. Secret fields take sealed values only (or None to clear)."""
        _check_sealed(values, self.secret_names)
        changes = {k: v for k, v in values.items() if self.values.get(k) != v}
        if changes:
            self._record(self.Changed, actor, changes=changes)

    def reseal(self, sealed: dict[str, str], actor: Actor) -> None:
        """Replace sealed secrets by the same secrets sealed under another key."""
        unknown = [k for k in sealed if k not in self.secret_names or self.values.get(k) is None]
        if unknown:
            raise InvalidCommand(f"{unknown[0]} holds no secret to reseal", field=unknown[0])
        _check_sealed(sealed, self.secret_names)
        if sealed:
            self._record(self.SecretsResealed, actor, sealed=sealed)


def _check_sealed(values: dict[str, Any], secret_names: list[str]) -> None:
    for name, v in values.items():
        if name in secret_names:
            if v is not None and not (isinstance(v, str) and v.startswith(SEALED_PREFIX)):
                raise InvalidCommand(f"{name} must be sealed before it is recorded", field=name)
        elif secret_fields({name: v}):
            raise InvalidCommand(f"{secret_fields({name: v})[0]} looks like a secret; only "
                                 "the declared API key fields may hold one", field=name)


class SettingsDocument(Provenanced):
    """One JSON object at one scope (see the module doc). Writes replace the object."""

    class Saved(LedgerAggregate.Created):
        scope: str
        account_id: str
        subject: str  # the user id or site id; "" for account and integration settings
        key: str  # the settings key, the site tab or the integration type
        value: dict[str, Any]

        def apply(self, doc: SettingsDocument) -> None:
            doc._apply_values(self.value, self)

    class Replaced(LedgerAggregate.Event):
        value: dict[str, Any]

        def apply(self, doc: SettingsDocument) -> None:
            doc._apply_values(self.value, self)

    def __init__(self, scope: str, account_id: str, subject: str, key: str,
                 value: dict[str, Any]) -> None:
        self.scope = scope
        self.account_id = account_id
        self.subject = subject
        self.key = key
        self.values = {}
        self.changed = {}

    @staticmethod
    def create_id(scope: Scope | str, account_id: str, subject: str, key: str) -> Any:
        return natural_id(f"settings-{Scope(scope).value}", account_id, subject, key)

    @classmethod
    def save(cls, scope: Scope, account_id: str, subject: str, key: str,
             value: dict[str, Any], actor: Actor) -> SettingsDocument:
        for name, v in (("account_id", account_id), ("key", key), ("subject", subject or "-")):
            if not isinstance(v, str) or not v or len(v) > 128:
                raise InvalidCommand(f"{name} must be 1 to 128 characters", field=name)
        if (scope in (Scope.ACCOUNT, Scope.INTEGRATION)) != (subject == ""):
            raise InvalidCommand(f"{scope.value} settings "
                                 f"{'have no' if subject else 'need a'} subject", field="subject")
        _check_document(value)
        doc: SettingsDocument = cls._open(cls.Saved, actor, scope=scope.value,
                                          account_id=account_id, subject=subject, key=key,
                                          value=value)
        return doc

    def replace(self, value: dict[str, Any], actor: Actor) -> None:
        _check_document(value)
        if value != self.values:
            self._record(self.Replaced, actor, value=value)


def _check_document(value: Any) -> None:
    if not isinstance(value, dict):
        raise InvalidCommand("a settings value is a JSON object", field="value")
    secrets = secret_fields(value)
    if secrets:
        raise InvalidCommand(f"value.{secrets[0]}: API keys and other secrets are kept "
                             "only in the global settings", field=f"value.{secrets[0]}")
    if _depth(value) > MAX_DEPTH:
        raise InvalidCommand(f"a settings value nests at most {MAX_DEPTH} levels",
                             field="value")
