"""`ledger demo`: a realistic month of usage, so that the dashboard has something to show.

Everything goes through the application services, as the API's commands do: purchases
and signup grants; text and image generation as metered provider calls through
`AIService` (hold and ProviderCall requested, the provider call, then capture and
succeeded, or release and failed), priced by the seeded CreditCostConfig (the CostBook)
with the provider cost from the registry's rates; image prompt extraction as a plain
deduction; top-ups when an account runs low, refunds of a few rejected images, a
goodwill adjustment, and holds still open at the end. Commands run in time order, each
inside `recorded_at(t)` (the ledger's clock), so their events carry times spread over
the past `days` (business hours, quieter weekends, activity growing over the month) up
to now.

The providers are simulated in-process (`ledger.providers.simulated`): no network, no
API key, usage and latency per model drawn from the seeded generator, and a small share
of failures (server error, timeout, malformed answer) that are released and cost
nothing. Latency is simulated time (the AIService's clock), never slept; a call's events
all carry its step's time.

Provider costs use the prices in force now: the registry's models were registered when
the store was seeded, so they had no price a month ago. The figures are random but
reproducible (`seed`); the accounts are new ones, so a store takes the demo once per
prefix (DemoExists otherwise).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from ledger.ai import AIService, CallResult, ModelChoice, ProviderCallFailed, call_budget_s
from ledger.credits import account_key
from ledger.domain.base import Actor, recorded_at, utcnow
from ledger.domain.credits import ProviderCharge
from ledger.domain.errors import Conflict, InsufficientCredits
from ledger.domain.pricing import Quote, text_cost_usd
from ledger.domain.settings import Scope
from ledger.providers import ChatMessage
from ledger.providers.simulated import CHARS_PER_TOKEN, SimulatedProviders
from ledger.service import Ledger

TEXT, IMAGE, EXTRACTION = "text_generation", "image_generation", "image_prompt_extraction"
BILLING = Actor(id="demo-billing", role="service")
BACKEND = Actor(id="demo-backend", role="service")
SUPPORT = Actor(id="demo-support", role="platform_admin")
Weights = tuple[tuple[str, int], ...]


class DemoExists(Conflict):
    title = "Demo data exists"


@dataclass(frozen=True)
class Profile:
    """One demo customer: how it buys credits and what it runs."""

    name: str
    pack: int  # credits per purchase
    pack_usd: str  # what a pack costs
    grant: int  # signup credits (expire after two weeks; unused ones are breakage)
    per_day: float  # operations on an average weekday
    mix: tuple[int, int, int]  # weights of text, image, image prompt extraction
    text_models: Weights = (("gpt-4o-mini", 6), ("gpt-4.1", 3), ("claude-3-5-haiku-20241022", 1))
    image_models: Weights = (("dall-e-3", 5), ("runware:100@1", 3), ("bria-2.3", 2))
    tops_up: bool = True  # buys another pack when it runs low; else it runs dry


PROFILES = (  # a month of usage is about 150 credits per daily operation
    Profile("northwind-media", 4_000, "72.00", 100, 60, (5, 3, 2)),
    Profile("acme-content", 2_000, "38.00", 100, 30, (6, 2, 2),
            text_models=(("gpt-4.1", 5), ("claude-3-5-sonnet-20241022", 3), ("gpt-4o", 2))),
    Profile("bluebird-shop", 1_500, "28.50", 100, 20, (2, 6, 2),
            image_models=(("gpt-image-1", 3), ("dall-e-3", 3), ("gpt-image-1-mini", 4))),
    Profile("pixel-forge", 1_500, "28.50", 100, 18, (1, 8, 1),
            image_models=(("runware:100@1", 6), ("bria-2.3", 3), ("dall-e-2", 1))),
    Profile("quill-agency", 1_000, "20.00", 100, 14, (7, 2, 1),
            text_models=(("claude-3-5-sonnet-20241022", 5), ("claude-3-opus-20240229", 1),
                         ("gpt-4.1", 4))),
    Profile("lumen-news", 1_000, "20.00", 100, 10, (8, 1, 1),
            text_models=(("gpt-4o-mini", 7), ("gpt-5.2", 3))),
    Profile("greenleaf-blog", 1_000, "20.00", 100, 8, (6, 3, 1)),
    Profile("harbor-travel", 500, "10.00", 100, 6, (4, 5, 1)),
    Profile("summit-legal", 500, "10.00", 100, 5, (9, 0, 1),
            text_models=(("gpt-5.1", 4), ("claude-3-5-sonnet-20241022", 4), ("gpt-4.1", 2))),
    Profile("atlas-recipes", 600, "12.00", 100, 5, (4, 5, 1), tops_up=False),
    Profile("maple-crafts", 300, "6.00", 100, 3, (3, 6, 1), tops_up=False),
    Profile("orbit-saas", 500, "10.00", 100, 0.6, (5, 4, 1)),  # leaves signup credits unused
)


@dataclass
class DemoSummary:
    accounts: int = 0
    purchases: int = 0
    grants: int = 0
    charges: int = 0  # succeeded calls and prompt extractions
    calls: int = 0  # metered provider calls made (succeeded or failed)
    failed_calls: int = 0  # released: they cost nothing
    refunds: int = 0
    adjustments: int = 0
    holds: int = 0
    refused: int = 0  # 402: an account without top-ups ran dry (nothing called)
    credits_used: int = 0
    revenue_usd: Decimal = Decimal(0)
    cost_usd: Decimal = Decimal(0)
    since: datetime | None = None
    until: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Decimal) else
                v.isoformat() if isinstance(v, datetime) else v
                for k, v in vars(self).items()}


@dataclass(order=True)
class _Step:
    at: datetime
    seq: int
    run: Callable[[], None] = field(compare=False)


class Demo:
    """Plans the month, then runs it in time order (`run`)."""

    def __init__(self, ledger: Ledger, *, days: int = 30, seed: int = 8, scale: float = 1.0,
                 prefix: str = "", now: datetime | None = None) -> None:
        if days < 1 or scale <= 0:
            raise ValueError("days must be at least 1 and scale positive")
        self.ledger = ledger
        self.now = now or utcnow()
        self.start = (self.now - timedelta(days=days)).replace(hour=0, minute=0, second=0,
                                                                microsecond=0)
        self.days = days
        self.scale = scale
        self.rng = random.Random(seed)
        self.prefix = prefix
        self.summary = DemoSummary(since=self.start, until=self.now)
        self._queue: list[_Step] = []
        self._seq = itertools.count()
        self._topping_up: set[str] = set()  # accounts with a top-up queued
        self._rates = self._current_rates()
        config = ledger.settings
        self.providers = SimulatedProviders(
            random.Random(self.rng.getrandbits(64)), timeout_s=config.provider_timeout_s,
            max_retries=config.provider_max_retries, backoff_s=config.provider_backoff_s)
        self.ai = AIService(ledger.pipeline, ledger.credits, self.providers, ledger.registry,
                            ledger.settings_service, clock=self.providers.clock,
                            call_budget_s=call_budget_s(config.provider_timeout_s,
                                                        config.provider_max_retries))

    # -- planning -----------------------------------------------------------------------

    def account_id(self, profile: Profile) -> str:
        return f"{self.prefix}{profile.name}"

    def _current_rates(self) -> dict[str, tuple[str, dict[str, Decimal]]]:
        """(provider, rates now) of every active, priced model of the registry; keeps
        their output token limits and image sizes in `_specs`."""
        rates, self._specs = {}, {}
        for model in self.ledger.registry.list(active=True):
            price = model.price_at(self.now)
            if price is not None and price.rates():
                rates[model.model_id] = (model.provider, price.rates())
                self._specs[model.model_id] = model.spec
        return rates

    def _pick(self, weights: Weights, model_type: str) -> str:
        known = [(m, w) for m, w in weights if m in self._rates]
        if not known:  # the registry lacks this profile's models: its type's default
            default = self.ledger.registry.default_for(model_type)
            if default is None or default.model_id not in self._rates:
                raise LookupError(f"no priced {model_type} model in the registry")
            return default.model_id
        models, w = zip(*known, strict=True)
        return str(self.rng.choices(models, weights=w)[0])

    def _at(self, step: Callable[[], None], when: datetime) -> None:
        if when <= self.now:
            heapq.heappush(self._queue, _Step(when, next(self._seq), step))

    def _business_time(self, day: datetime) -> datetime:
        hour = min(max(self.rng.gauss(13.5, 3.5), 0.0), 23.99)
        return day + timedelta(hours=hour, seconds=self.rng.uniform(0, 59))

    def plan(self) -> int:
        """Queue the month's commands; how many there are (more may follow: top-ups,
        refunds)."""
        for profile in PROFILES:
            if self.ledger.store.find(account_key(self.account_id(profile))) is not None:
                raise DemoExists(f"account {self.account_id(profile)} exists: the demo runs "
                                 "once per store (use another --prefix)", field="prefix")
        for i, profile in enumerate(PROFILES):
            opened = self.start + timedelta(hours=8, minutes=7 * i)
            self._at(partial(self._open, profile), opened)
            for day_no in range(self.days + 1):
                day = self.start + timedelta(days=day_no)
                quiet = 0.35 if day.weekday() >= 5 else 1.0
                growth = 0.75 + 0.5 * day_no / self.days
                mean = profile.per_day * quiet * growth * self.scale
                for _ in range(_poisson(self.rng, mean)):
                    when = max(self._business_time(day), opened + timedelta(minutes=5))
                    kind = self.rng.choices((TEXT, IMAGE, EXTRACTION), weights=profile.mix)[0]
                    self._at(partial(self._use, profile, kind), when)
        self._at(self._goodwill, self.start + timedelta(days=self.days // 2, hours=10))
        for profile in PROFILES[:3]:  # long jobs still running: held credits
            self._at(partial(self._hold, profile),
                     self.now - timedelta(minutes=self.rng.uniform(3, 40)))
        return len(self._queue)

    # -- running ------------------------------------------------------------------------

    def steps(self) -> Iterator[datetime]:
        """Run the queued commands in time order, yielding after each."""
        quiet = _SimulatedFailures()  # counted in the summary, not logged one by one
        logging.getLogger("ledger.ai").addFilter(quiet)
        try:
            while self._queue:
                step = heapq.heappop(self._queue)
                with recorded_at(step.at):
                    step.run()
                yield step.at
        finally:
            logging.getLogger("ledger.ai").removeFilter(quiet)

    def run(self, progress: Callable[[int, int], None] | None = None) -> DemoSummary:
        total = self.plan()
        for done, _ in enumerate(self.steps(), 1):
            total = max(total, done + len(self._queue))
            if progress is not None:
                progress(done, total)
        return self.summary

    # -- commands -----------------------------------------------------------------------

    def _open(self, profile: Profile) -> None:
        account = self.account_id(profile)
        self._buy(profile)
        self.ledger.credits.grant(account, profile.grant, "signup bonus", BILLING,
                                  expires_at=utcnow() + timedelta(days=14))
        self.summary.accounts += 1
        self.summary.grants += 1
        self._settings(profile)

    def _buy(self, profile: Profile) -> None:
        n = self.summary.purchases + 1
        self.ledger.credits.purchase(self.account_id(profile), profile.pack,
                                     Decimal(profile.pack_usd), f"demo_pi_{n:05d}", BILLING)
        self.summary.purchases += 1

    def _use(self, profile: Profile, operation: str) -> None:
        account = self.account_id(profile)
        try:
            if operation == EXTRACTION:
                charge, cost = self._extraction()
                receipt = self.ledger.credits.deduct(account, charge, cost, BACKEND).value
                credits, revenue, cost_usd = charge.credits, charge.revenue_usd, cost.cost_usd
                available = receipt.available
            else:
                result = self._call(profile, operation)
                credits, revenue, cost_usd = result.credits, result.revenue_usd, result.cost_usd
                available = result.balance - result.held
                self.summary.calls += 1
        except InsufficientCredits:  # nothing was held, nothing called
            self.summary.refused += 1
            return
        except ProviderCallFailed:  # the hold was released: it cost nothing
            self.summary.calls += 1
            self.summary.failed_calls += 1
            return
        s = self.summary
        s.charges += 1
        s.credits_used += credits
        s.revenue_usd += revenue
        s.cost_usd += cost_usd or 0
        if operation == IMAGE and self.rng.random() < 0.02:
            self._at(partial(self._refund, account, result.charge_id),
                     utcnow() + timedelta(minutes=self.rng.uniform(10, 180)))
        if (profile.tops_up and available < profile.pack // 10
                and account not in self._topping_up):
            self._topping_up.add(account)
            self._at(partial(self._top_up, profile),
                     utcnow() + timedelta(minutes=self.rng.uniform(5, 90)))

    def _call(self, profile: Profile, operation: str) -> CallResult:
        """One metered call of `profile` through the AIService and the simulated
        providers (ProviderCallFailed when the simulation fails it)."""
        account = self.account_id(profile)
        if operation == IMAGE:
            model = self._pick(profile.image_models, "image")
            sizes = self._specs[model].get("available_sizes") or [None]
            params = {"n": self.rng.choices((1, 2), weights=(3, 1))[0], "size": sizes[0],
                      "quality": "hd" if profile.mix[1] >= 5 else "standard", "style": None}
            prompt = (f"An editorial illustration for {profile.name.replace('-', ' ')}: "
                      f"{self.rng.choice(_SUBJECTS)}, soft light, no text")
            result = self.ai.images(account, None, prompt, self._choice(model, params),
                                    BACKEND)
        else:
            model = self._pick(profile.text_models, "text")
            limit = int(self._specs[model].get("max_output_tokens") or 4096)
            params = {"max_tokens": min(limit, 4096), "temperature": 0.7}
            result = self.ai.text(account, None, self._messages(profile),
                                  self._choice(model, params), BACKEND)
        assert isinstance(result, CallResult)  # no idempotency key: never a replay
        return result

    def _choice(self, model: str, params: dict[str, Any]) -> ModelChoice:
        """The model with the rates in force now (the registry had no price at the
        step's time, see the module docstring) and no API key (the simulated providers
        take none)."""
        provider, rates = self._rates[model]
        return ModelChoice(provider, model, "", rates, params)

    def _messages(self, profile: Profile) -> tuple[ChatMessage, ...]:
        """An article request: about 1,400 prompt tokens on average (a brief, notes and
        source excerpts), as many characters as the simulated providers count for them."""
        tokens = min(int(self.rng.lognormvariate(math.log(1400), 0.5)), 12_000)
        brief = (f"Write a {self.rng.choice(('professional', 'friendly', 'conversational'))} "
                 f"article for {profile.name.replace('-', ' ')} about "
                 f"{self.rng.choice(_SUBJECTS)}. Notes and sources follow.\n")
        notes = _NOTES[:max(0, tokens * CHARS_PER_TOKEN - len(brief))]
        return (ChatMessage("system", "You are the content writer of a small publisher."),
                ChatMessage("user", brief + notes))

    def _extraction(self) -> tuple[Quote, ProviderCharge]:
        """Reading an image prompt out of a draft: a short call to a small model,
        charged as a deduction (its quote and provider cost)."""
        model = self._pick((("gpt-4o-mini", 1),), "text")
        tokens_in = int(self.rng.uniform(400, 1500))
        tokens_out = int(self.rng.uniform(60, 220))
        provider, rates = self._rates[model]
        return self.ledger.credits.price(EXTRACTION, units=1), ProviderCharge(
            model_id=model, provider=provider, input_tokens=tokens_in,
            output_tokens=tokens_out, rates=rates,
            cost_usd=text_cost_usd(tokens_in, tokens_out, rates["input_token_rate"],
                                   rates["output_token_rate"]))

    def _top_up(self, profile: Profile) -> None:
        self._topping_up.discard(self.account_id(profile))
        self._buy(profile)

    def _refund(self, account: str, charge_id: str) -> None:
        self.ledger.credits.refund(account, charge_id, None, "image rejected by the customer",
                                   SUPPORT)
        self.summary.refunds += 1

    def _goodwill(self) -> None:
        self.ledger.credits.adjust(self.account_id(PROFILES[1]), 250,
                                   "goodwill: outage on the 12th", SUPPORT)
        self.summary.adjustments += 1

    def _hold(self, profile: Profile) -> None:
        try:
            self.ledger.credits.reserve(self.account_id(profile), TEXT,
                                        self.rng.randrange(40, 400), BACKEND,
                                        expires_in_s=6 * 3600)
        except InsufficientCredits:
            return
        self.summary.holds += 1

    def _settings(self, profile: Profile) -> None:
        """Content, image and publishing settings of the accounts (the settings panel):
        a site "main" each, writing automation for the writers, an image style for the
        image-heavy ones."""
        service, account = self.ledger.settings_service, self.account_id(profile)
        site = {"general": {"site_name": profile.name.replace("-", " ").title(),
                            "site_url": f"https://{profile.name}.example"},
                "publishing": {"platform": self.rng.choice(("wordpress", "shopify", "webflow")),
                               "auto_publish": profile.mix[0] >= 5,
                               "publish_days": ["mon", "wed", "fri"], "publish_time": "08:00"},
                "image-settings": {"image_quality": "hd" if profile.mix[1] >= 5 else "standard",
                                   "max_in_article_images": 1 + profile.mix[1] // 3}}
        for tab, value in site.items():
            service.put_document(Scope.SITE, account, "main", tab, value, BILLING)
        if profile.mix[0] >= 5:
            service.put_document(Scope.ACCOUNT, account, "", "writer_automation", {
                "enabled": True, "articles_per_run": self.rng.randrange(2, 10),
                "tone": self.rng.choice(("professional", "friendly", "conversational")),
                "images_per_article": 1, "schedule": {"frequency": "daily",
                                                      "run_at": "07:30"}}, BILLING)
        if profile.mix[1] >= 5:
            service.put_integration(account, "runware", {"image_style": "illustration"},
                                    BILLING)


_SUBJECTS = ("a harbour at dawn", "autumn recipes", "remote work tools", "a city walking tour",
             "spring gardening", "small business taxes", "mountain trails", "home coffee")
_NOTES = " ".join(itertools.repeat("Draft notes, quotes and figures the article should use, "
                                   "with links to its sources.", 1000))


class _SimulatedFailures(logging.Filter):
    """Drops the AIService's warning about each failure of a simulated provider."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.WARNING and "simulated" in record.getMessage())


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method; means here are small)."""
    if mean <= 0:
        return 0
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
