"""Who may do what: one table, checked by one dependency on every route.

Each route names an action; POLICY says which roles may perform it and whether the
action is scoped to an account. For scoped actions, a key bound to an account
(`account_admin`, `user`) may act only on that account: another account's resource
answers 404, so that its existence does not leak.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.domain.keys import Role

A, S, AA, U, AU = (Role.PLATFORM_ADMIN, Role.SERVICE, Role.ACCOUNT_ADMIN, Role.USER,
                   Role.AUDITOR)
EVERYONE = frozenset(Role)


@dataclass(frozen=True)
class Rule:
    roles: frozenset[Role]
    account_scoped: bool = False


POLICY: dict[str, Rule] = {
    # keys
    "keys.issue": Rule(frozenset({A, AA}), account_scoped=True),
    "keys.revoke": Rule(frozenset({A, AA}), account_scoped=True),
    "keys.list": Rule(frozenset({A, AA, AU}), account_scoped=True),
    # credits
    "credits.read": Rule(EVERYONE, account_scoped=True),
    "credits.purchase": Rule(frozenset({A, S}), account_scoped=True),
    "credits.grant": Rule(frozenset({A, S}), account_scoped=True),
    "credits.adjust": Rule(frozenset({A}), account_scoped=True),
    "credits.charge": Rule(frozenset({A, S}), account_scoped=True),
    "credits.refund": Rule(frozenset({A, S}), account_scoped=True),
    # configuration
    "costs.read": Rule(EVERYONE),
    "costs.write": Rule(frozenset({A})),
    "models.read": Rule(EVERYONE),
    "models.write": Rule(frozenset({A})),
    "settings.global.read": Rule(frozenset({A, S, AU})),
    "settings.global.write": Rule(frozenset({A})),
    "settings.account.read": Rule(EVERYONE, account_scoped=True),
    "settings.account.write": Rule(frozenset({A, AA}), account_scoped=True),
    "settings.user": Rule(frozenset({A, S, AA, U}), account_scoped=True),
    "settings.user.read": Rule(EVERYONE, account_scoped=True),
    "settings.effective": Rule(EVERYONE, account_scoped=True),
    # metered AI calls
    "ai.call": Rule(frozenset({A, S, AA, U}), account_scoped=True),
    # readers
    "usage.read": Rule(EVERYONE, account_scoped=True),
    "reports.read": Rule(frozenset({A, S, AU})),
    "projections.read": Rule(frozenset({A, S, AU})),
    "audit.read": Rule(frozenset({A, AU})),
    # the dashboard's reads beside the contract's (api/routes/dashboard_data.py)
    "auth.me": Rule(EVERYONE),
    "balances.list": Rule(frozenset({A, S, AU})),
    "calls.read": Rule(frozenset({A, S, AU})),
    # webhook subscriptions: platform-wide ones are the platform's, an account's its own
    "webhooks.platform.read": Rule(frozenset({A, AU})),
    "webhooks.platform.write": Rule(frozenset({A})),
    "webhooks.account.read": Rule(frozenset({A, AA, AU}), account_scoped=True),
    "webhooks.account.write": Rule(frozenset({A, AA}), account_scoped=True),
}
