"""The shapes of settings values: global fields, integration overrides, user settings keys
(SETTINGS_SCHEMAS) and site tabs. A value is checked here before any event is recorded.

Stored documents keep only the fields their writer set (``exclude_unset``): a field left
out is inherited from the level above in the effective view, and a schema default is the
bottom level ("default").
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    StrictInt,
    ValidationError,
    model_validator,
)

from ledger.domain.errors import InvalidCommand

TEXT_INTEGRATIONS = ("openai", "anthropic", "google")
IMAGE_INTEGRATIONS = ("dalle", "runware", "bria")
INTEGRATIONS = TEXT_INTEGRATIONS + IMAGE_INTEGRATIONS
# integration type -> (registry provider, model type) of the models it may name
INTEGRATION_MODELS = {"openai": ("openai", "text"), "anthropic": ("anthropic", "text"),
                      "google": ("google", "text"), "dalle": ("openai", "image"),
                      "runware": ("runware", "image"), "bria": ("bria", "image")}
# default_image_service names the service; "openai" is served by the dalle integration
IMAGE_SERVICES = {"openai": "dalle", "runware": "runware", "bria": "bria"}
SECRET_FIELDS = tuple(f"{p}_api_key" for p in INTEGRATIONS)


def _timezone(v: str) -> str:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("not an IANA time zone, e.g. Europe/Berlin") from None
    return v


Temperature = Annotated[float, Field(ge=0, le=2, allow_inf_nan=False)]
MaxTokens = Annotated[StrictInt, Field(ge=1, le=1_000_000)]
ModelRef = Annotated[str, Field(min_length=1, max_length=128,
                                pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@\-]*$")]
Size = Annotated[str, Field(pattern=r"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$")]
ImageQuality = Literal["standard", "hd"]
ImageStyle = Literal["photorealistic", "illustration", "digital_art", "cinematic", "anime",
                     "3d_render", "watercolor", "oil_painting", "sketch", "minimalist",
                     "vivid", "natural"]
TextProvider = Literal["openai", "anthropic", "google"]
ImageService = Literal["openai", "runware", "bria"]
Timezone = Annotated[str, Field(max_length=64), AfterValidator(_timezone)]
Language = Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")]
ClockTime = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
Label = Annotated[str, Field(min_length=1, max_length=100)]
Tone = Literal["professional", "friendly", "casual", "authoritative", "conversational",
               "technical", "persuasive"]
Frequency = Literal["hourly", "daily", "weekly", "monthly"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Key = SecretStr | None


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# -- global -------------------------------------------------------------------------------

class GlobalSettings(Schema):
    """GlobalIntegrationSettings with the seed's flat field names and defaults."""

    openai_api_key: Key = None
    anthropic_api_key: Key = None
    google_api_key: Key = None
    dalle_api_key: Key = None
    runware_api_key: Key = None
    bria_api_key: Key = None

    openai_model: ModelRef | None = "gpt-4o-mini"
    openai_temperature: Temperature = 0.7
    openai_max_tokens: MaxTokens = 8192
    anthropic_model: ModelRef | None = "claude-3-5-sonnet-20241022"
    anthropic_temperature: Temperature = 0.7
    anthropic_max_tokens: MaxTokens = 8192
    google_model: ModelRef | None = None
    google_temperature: Temperature = 0.7
    google_max_tokens: MaxTokens = 8192
    dalle_model: ModelRef | None = "dall-e-3"
    dalle_image_size: Size = "1024x1024"
    runware_model: ModelRef | None = "runware:100@1"
    bria_model: ModelRef | None = "bria-2.3"

    default_text_provider: TextProvider = "openai"
    default_image_service: ImageService = "openai"
    image_quality: ImageQuality = "standard"
    image_style: ImageStyle = "photorealistic"
    max_in_article_images: Annotated[StrictInt, Field(ge=0, le=20)] = 2
    desktop_image_size: Size = "1024x1024"


# -- integration overrides (account, site, user) --------------------------------------------

class TextOverride(Schema):
    model: ModelRef | None = None
    temperature: Temperature | None = None
    max_tokens: MaxTokens | None = None


class ImageOverride(Schema):
    model: ModelRef | None = None
    image_size: Size | None = None
    image_quality: ImageQuality | None = None
    image_style: ImageStyle | None = None


INTEGRATION_OVERRIDES: dict[str, type[Schema]] = {
    **dict.fromkeys(TEXT_INTEGRATIONS, TextOverride),
    **dict.fromkeys(IMAGE_INTEGRATIONS, ImageOverride),
}


class IntegrationOverrides(Schema):
    openai: TextOverride | None = None
    anthropic: TextOverride | None = None
    google: TextOverride | None = None
    dalle: ImageOverride | None = None
    runware: ImageOverride | None = None
    bria: ImageOverride | None = None


# -- user settings keys (SETTINGS_SCHEMAS) ---------------------------------------------------

class TableSettings(Schema):
    """How the app's tables page and sort."""

    records_per_page: Annotated[StrictInt, Field(ge=5, le=500)] = 25
    default_sort: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")] = "created_at"
    sort_direction: Literal["asc", "desc"] = "desc"
    hidden_columns: Annotated[list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]],
                              Field(max_length=50)] = []
    density: Literal["comfortable", "compact"] = "comfortable"


class Notifications(Schema):
    email: StrictBool = True
    in_app: StrictBool = True
    low_credit_alert: StrictBool = True
    weekly_digest: StrictBool = False


class UserPreferences(Schema):
    theme: Literal["light", "dark", "system"] = "system"
    language: Language = "en"
    timezone: Timezone = "UTC"
    notifications: Notifications = Notifications()


class AISettings(Schema):
    """A user's own choice of provider and model parameters (never an API key)."""

    default_text_provider: TextProvider | None = None
    default_image_service: ImageService | None = None
    integrations: IntegrationOverrides = IntegrationOverrides()


class Schedule(Schema):
    frequency: Frequency = "daily"
    run_at: ClockTime = "09:00"
    weekdays: Annotated[list[Weekday], Field(max_length=7)] = []
    timezone: Timezone = "UTC"


class PlannerAutomation(Schema):
    """Keyword research to content ideas, run on a schedule."""

    enabled: StrictBool = False
    schedule: Schedule = Schedule()
    keywords_per_run: Annotated[StrictInt, Field(ge=1, le=1000)] = 50
    auto_cluster: StrictBool = True
    min_keywords_per_cluster: Annotated[StrictInt, Field(ge=1, le=100)] = 3
    auto_generate_ideas: StrictBool = True
    max_ideas_per_cluster: Annotated[StrictInt, Field(ge=1, le=50)] = 5
    daily_credit_cap: Annotated[StrictInt, Field(ge=0, le=10**9)] | None = None


class WordRange(Schema):
    min_words: Annotated[StrictInt, Field(ge=100, le=20_000)] = 1000
    max_words: Annotated[StrictInt, Field(ge=100, le=20_000)] = 2000

    @model_validator(mode="after")
    def _words(self) -> WordRange:
        if self.min_words > self.max_words:
            raise ValueError("min_words must not exceed max_words")
        return self


class WriterAutomation(WordRange):
    """Ideas to drafted articles, run on a schedule."""

    enabled: StrictBool = False
    schedule: Schedule = Schedule()
    articles_per_run: Annotated[StrictInt, Field(ge=1, le=100)] = 5
    tone: Tone = "professional"
    generate_images: StrictBool = True
    images_per_article: Annotated[StrictInt, Field(ge=0, le=20)] = 2
    auto_publish: StrictBool = False
    publish_status: Literal["draft", "publish", "scheduled"] = "draft"
    daily_credit_cap: Annotated[StrictInt, Field(ge=0, le=10**9)] | None = None


SETTINGS_SCHEMAS: dict[str, type[Schema]] = {
    "table_settings": TableSettings,
    "user_preferences": UserPreferences,
    "ai_settings": AISettings,
    "planner_automation": PlannerAutomation,
    "writer_automation": WriterAutomation,
}
# Account-wide defaults for the same keys; account AI overrides are integration settings.
ACCOUNT_SCHEMAS = {k: v for k, v in SETTINGS_SCHEMAS.items() if k != "ai_settings"}


# -- site tabs ---------------------------------------------------------------------------------

class SiteGeneral(Schema):
    site_name: Label | None = None
    site_url: Annotated[str, Field(max_length=500,
                                   pattern=r"^https?://[^\s/$.?#][^\s]*$")] | None = None
    language: Language = "en"
    timezone: Timezone = "UTC"
    industry: Label | None = None
    sectors: Annotated[list[Label], Field(max_length=20)] = []


class SiteContentGeneration(WordRange):
    default_text_provider: TextProvider | None = None
    tone: Tone = "professional"
    target_audience: Annotated[str, Field(max_length=500)] | None = None
    include_faq: StrictBool = True
    include_table_of_contents: StrictBool = True


class SiteImageSettings(Schema):
    default_image_service: ImageService | None = None
    image_quality: ImageQuality | None = None
    image_style: ImageStyle | None = None
    max_in_article_images: Annotated[StrictInt, Field(ge=0, le=20)] | None = None
    desktop_image_size: Size | None = None
    featured_image: StrictBool = True


class SitePublishing(Schema):
    platform: Literal["wordpress", "shopify", "webflow", "custom", "none"] = "none"
    auto_publish: StrictBool = False
    default_status: Literal["draft", "publish", "scheduled"] = "draft"
    publish_days: Annotated[list[Weekday], Field(max_length=7)] = []
    publish_time: ClockTime = "09:00"
    max_posts_per_day: Annotated[StrictInt, Field(ge=1, le=100)] = 3


ContentType = Literal["blog_post", "product_page", "category_page", "landing_page", "guide",
                      "review", "comparison", "news"]


class SiteContentTypes(Schema):
    enabled_types: Annotated[list[ContentType], Field(min_length=1, max_length=8)] = [
        "blog_post"]
    default_type: ContentType = "blog_post"

    @model_validator(mode="after")
    def _default_enabled(self) -> SiteContentTypes:
        if self.default_type not in self.enabled_types:
            raise ValueError("default_type must be one of enabled_types")
        return self


SITE_TABS: dict[str, type[Schema]] = {
    "general": SiteGeneral,
    "content-generation": SiteContentGeneration,
    "image-settings": SiteImageSettings,
    "integrations": IntegrationOverrides,
    "publishing": SitePublishing,
    "content-types": SiteContentTypes,
}


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse(schema: type[BaseModel], value: Any, *, where: str = "value") -> BaseModel:
    """The value checked against `schema`; InvalidCommand names every failing path.

    Messages carry the path and the rule, never the input (it may be a secret)."""
    if not isinstance(value, dict):
        raise InvalidCommand(f"{where} must be a JSON object", field=where)
    try:
        return schema.model_validate(value)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False, include_context=False)
        paths = [".".join(filter(None, (where, _path(tuple(e["loc"]))))) for e in errors]
        detail = "; ".join(f"{p}: {e['msg']}" for p, e in zip(paths, errors, strict=True))
        raise InvalidCommand(detail, field=paths[0]) from None


def validated(schema: type[BaseModel], value: Any, *, where: str = "value") -> dict[str, Any]:
    """The value as stored: only the fields given, checked against `schema`."""
    dumped: dict[str, Any] = parse(schema, value, where=where).model_dump(
        mode="json", exclude_unset=True)
    return dumped


def schema_defaults(schema: type[BaseModel]) -> dict[str, Any]:
    """The schema's default of every field that has one (None counts as 'no default')."""
    dumped: dict[str, Any] = schema.model_construct().model_dump(mode="json")
    return {k: v for k, v in dumped.items() if v is not None}
