"""Settings aggregates, schemas and the secret box, without a database."""

from __future__ import annotations

from typing import Any

import pytest
from eventsourcing.utils import get_topic

from ledger.domain.base import SYSTEM
from ledger.domain.errors import InvalidCommand
from ledger.domain.models import AIModelConfig, ModelCatalog
from ledger.domain.settings import (
    GlobalIntegrationSettings,
    Scope,
    SettingsDocument,
    secret_fields,
)
from ledger.secrets import SecretBox, SecretUnreadable, mask
from ledger.settings_schemas import (
    SETTINGS_SCHEMAS,
    SITE_TABS,
    GlobalSettings,
    schema_defaults,
    validated,
)

KEY = "sk-test-0123456789abcdefWXYZ"


def test_global_settings_refuse_an_unsealed_key() -> None:
    with pytest.raises(InvalidCommand, match="sealed"):
        GlobalIntegrationSettings.configure({"openai_api_key": KEY}, ["openai_api_key"], SYSTEM)
    g = GlobalIntegrationSettings.configure({"openai_model": "gpt-4o"}, ["openai_api_key"],
                                            SYSTEM)
    with pytest.raises(InvalidCommand, match="sealed"):
        g.change({"openai_api_key": KEY}, SYSTEM)
    with pytest.raises(InvalidCommand, match="secret"):
        g.change({"extra_secret": "x"}, SYSTEM)
    g.change({"openai_api_key": SecretBox([SecretBox.new_key()]).seal(KEY)}, SYSTEM)
    assert g.values["openai_api_key"].startswith("fernet:")


def test_provenance_follows_each_field() -> None:
    g = GlobalIntegrationSettings.configure({"a_model": "x", "b_model": "y"}, [], SYSTEM)
    g.change({"b_model": "z", "a_model": "x"}, SYSTEM)
    assert g.pending_events[-1].changes == {"b_model": "z"}
    assert g.changed_at("a_model")[0] == 1
    assert g.changed_at("b_model")[0] == 2


@pytest.mark.parametrize("value", [
    {"openai_api_key": "x"},
    {"integrations": {"openai": {"apiKey": "x"}}},
    {"rules": [{"token": "x"}]},
    {"password": "x"},
])
def test_documents_never_hold_a_secret(value: dict[str, Any]) -> None:
    with pytest.raises(InvalidCommand, match="secrets are kept only in the global"):
        SettingsDocument.save(Scope.USER, "acme", "u1", "k", value, SYSTEM)
    assert secret_fields(value)


def test_a_document_upserts_and_records_only_changes() -> None:
    doc = SettingsDocument.save(Scope.USER, "acme", "u1", "table_settings",
                                {"records_per_page": 50}, SYSTEM)
    doc.replace({"records_per_page": 50}, SYSTEM)
    assert doc.version == 1
    doc.replace({"records_per_page": 100, "sort_direction": "asc"}, SYSTEM)
    assert doc.version == 2
    assert doc.values["records_per_page"] == 100
    assert "max_tokens" not in secret_fields({"max_tokens": 1})
    with pytest.raises(InvalidCommand, match="subject"):
        SettingsDocument.save(Scope.ACCOUNT, "acme", "u1", "k", {}, SYSTEM)


def test_schemas_name_the_failing_path() -> None:
    with pytest.raises(InvalidCommand) as err:
        validated(SETTINGS_SCHEMAS["planner_automation"],
                  {"schedule": {"run_at": "25:00"}})
    assert err.value.field == "value.schedule.run_at"
    with pytest.raises(InvalidCommand, match="min_words must not exceed"):
        validated(SETTINGS_SCHEMAS["writer_automation"], {"min_words": 3000,
                                                          "max_words": 1000})
    with pytest.raises(InvalidCommand) as err:
        validated(SETTINGS_SCHEMAS["ai_settings"],
                  {"integrations": {"openai": {"temperature": 2.5}}})
    assert err.value.field == "value.integrations.openai.temperature"
    with pytest.raises(InvalidCommand) as err:
        validated(SETTINGS_SCHEMAS["user_preferences"], {"timezone": "Mars/Olympus"})
    assert err.value.field == "value.timezone"
    assert validated(SITE_TABS["content-types"], {"enabled_types": ["guide", "review"],
                                                  "default_type": "guide"})


def test_schema_errors_never_echo_the_input() -> None:
    with pytest.raises(InvalidCommand) as err:
        validated(SETTINGS_SCHEMAS["user_preferences"], {"openai_api_key": KEY})
    assert KEY not in str(err.value.detail)
    with pytest.raises(InvalidCommand) as err:
        validated(GlobalSettings, {"openai_api_key": 12345, "image_quality": KEY})
    assert KEY not in str(err.value.detail)


def test_every_schema_default_validates() -> None:
    for schema in (*SETTINGS_SCHEMAS.values(), *SITE_TABS.values()):
        defaults = schema_defaults(schema)
        assert validated(schema, defaults) == defaults


def test_secret_box_rotation_keeps_old_secrets_readable() -> None:
    old, new = SecretBox.new_key(), SecretBox.new_key()
    sealed = SecretBox([old]).seal(KEY)
    both = SecretBox([new, old])
    assert both.open(sealed) == KEY
    resealed = both.reseal(sealed)
    assert resealed is not None
    assert both.reseal(resealed) is None
    assert SecretBox([new]).open(resealed) == KEY
    with pytest.raises(SecretUnreadable) as err:
        SecretBox([new]).open(sealed)
    assert KEY not in str(err.value)


def test_mask_shows_at_most_the_last_four() -> None:
    assert mask(KEY) == "sk-...WXYZ"
    assert mask("r8_abcdefghijkl1234") == "****1234"
    assert mask("short") == "****"


def test_event_topics_are_stable() -> None:
    """Stored events name their class by topic: moving one breaks the log."""
    events = [AIModelConfig.Registered, AIModelConfig.Revised, AIModelConfig.Repriced,
              AIModelConfig.Activated, AIModelConfig.Deactivated, AIModelConfig.MadeDefault,
              AIModelConfig.DefaultCleared, ModelCatalog.Opened, ModelCatalog.ModelListed,
              ModelCatalog.DefaultChosen, GlobalIntegrationSettings.Configured,
              GlobalIntegrationSettings.Changed, GlobalIntegrationSettings.SecretsResealed,
              SettingsDocument.Saved, SettingsDocument.Replaced]
    assert [get_topic(e) for e in events] == [
        "ledger.domain.models:AIModelConfig.Registered",
        "ledger.domain.models:AIModelConfig.Revised",
        "ledger.domain.models:AIModelConfig.Repriced",
        "ledger.domain.models:AIModelConfig.Activated",
        "ledger.domain.models:AIModelConfig.Deactivated",
        "ledger.domain.models:AIModelConfig.MadeDefault",
        "ledger.domain.models:AIModelConfig.DefaultCleared",
        "ledger.domain.models:ModelCatalog.Opened",
        "ledger.domain.models:ModelCatalog.ModelListed",
        "ledger.domain.models:ModelCatalog.DefaultChosen",
        "ledger.domain.settings:GlobalIntegrationSettings.Configured",
        "ledger.domain.settings:GlobalIntegrationSettings.Changed",
        "ledger.domain.settings:GlobalIntegrationSettings.SecretsResealed",
        "ledger.domain.settings:SettingsDocument.Saved",
        "ledger.domain.settings:SettingsDocument.Replaced",
    ]
