"""/system/settings/*: global, account, integration, site and user settings, and the
effective view that merges them. Every write is versioned: responses carry the version
as ETag, and a write whose If-Match is stale gets 409. API keys are write-only: they come
back masked, and only the global level may hold one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse
from pydantic import Field

from api.deps import Caller, IdempotencyDep, IfMatchDep, LedgerDep, authorize, json_ready
from api.problems import Problem
from api.replies import reply_versioned, respond_with
from api.schemas import Body, Instant
from ledger.domain.keys import Role
from ledger.domain.settings import GlobalIntegrationSettings, Scope, SettingsDocument
from ledger.service import Ledger
from ledger.settings import Saved
from ledger.settings_schemas import GlobalSettings

router = APIRouter(prefix="/system/settings", tags=["settings"])

AsOf = Annotated[Instant | None, Query(description="the settings as they stood then")]
AccountQ = Annotated[str | None, Query(description="admin roles: the account to act on")]
UserQ = Annotated[str | None, Query(description="admin roles: the user to act on")]


class ValuePut(Body):
    value: dict[str, Any]


class UserSettingPut(Body):
    key: Annotated[str, Field(min_length=1, max_length=64)]
    value: dict[str, Any]


def _user(caller: Caller, account_id: str | None, user_id: str | None) -> tuple[str, str]:
    """(account, user) of a user-settings request: a `user` key's own; others name one."""
    account = caller.account(account_id)
    own = caller.principal.user_id
    if caller.principal.role is Role.USER:
        if user_id not in (None, own):
            raise Problem(404, "Not found", "no such user")
        user_id = own
    user_id = user_id or own
    if not user_id:
        raise Problem(422, "Validation failed", "user_id is required",
                      errors=[{"field": "user_id", "message": "required"}])
    return account, user_id


def doc_body(doc: SettingsDocument) -> dict[str, Any]:
    subject = {Scope.SITE.value: "site_id", Scope.USER.value: "user_id"}.get(doc.scope)
    body = {"id": str(doc.id), "scope": doc.scope, "account_id": doc.account_id,
            **({subject: doc.subject} if subject else {}), "key": doc.key,
            "value": doc.values, "version": doc.version, "created_at": doc.created_on,
            "updated_at": doc.modified_on}
    return json_ready(body)  # type: ignore[no-any-return]


def saved_body(saved: Saved) -> dict[str, Any]:
    body = doc_body(saved.document)
    if saved.document.scope == Scope.INTEGRATION.value:
        body["dropped_fields"] = saved.dropped
    return body


def respond_saved(saved: Saved) -> tuple[int, dict[str, Any]]:
    return (201 if saved.created else 200), saved_body(saved)


def _tagged(response: Response, doc: SettingsDocument | None) -> None:
    response.headers["ETag"] = f'"{0 if doc is None else doc.version}"'


def _absent(scope: Scope, key: str) -> Problem:
    return Problem(404, "Not found", f"no {scope.value} settings {key!r} yet (PUT creates "
                   "them; If-Match \"0\" means only if absent)")


# -- global ---------------------------------------------------------------------------------

@router.get("/global")
def get_global(ledger: LedgerDep, response: Response,
               caller: Annotated[Caller, Depends(authorize("settings.global.read"))],
               as_of: AsOf = None) -> dict[str, Any]:
    """GlobalIntegrationSettings (the seed's flat fields); API keys masked."""
    service = ledger.settings_service
    current = service.global_settings(as_of)
    response.headers["ETag"] = f'"{0 if current is None else current.version}"'
    return json_ready(_global_body(ledger, current))  # type: ignore[no-any-return]


def _global_body(ledger: Ledger, current: GlobalIntegrationSettings | None) -> dict[str, Any]:
    return {**ledger.settings_service.global_view(current),
            "version": 0 if current is None else current.version,
            "updated_at": None if current is None else current.modified_on}


@router.put("/global")
def put_global(body: GlobalSettings, ledger: LedgerDep, idem: IdempotencyDep,
               if_match: IfMatchDep,
               caller: Annotated[Caller, Depends(authorize("settings.global.write"))]
               ) -> JSONResponse:
    """Partial update: only the fields sent change (null clears an API key). Keys are
    sealed before they are recorded and come back masked. 422 names a bad field or a
    model that is not an active model of its integration."""
    values = {k: getattr(body, k) for k in body.model_fields_set}
    return reply_versioned(ledger.settings_service.put_global(
        values, caller.actor, if_match=if_match, idem=idem,
        respond=respond_with(200, lambda g: json_ready(_global_body(ledger, g)))))


# -- account ---------------------------------------------------------------------------------

@router.get("/account/{key}")
def get_account_setting(key: str, ledger: LedgerDep, response: Response,
                        caller: Annotated[Caller, Depends(authorize("settings.account.read"))],
                        account_id: AccountQ = None, as_of: AsOf = None) -> dict[str, Any]:
    doc = ledger.settings_service.document(Scope.ACCOUNT, caller.account(account_id), "", key,
                                           as_of)
    if doc is None:
        raise _absent(Scope.ACCOUNT, key)
    _tagged(response, doc)
    return doc_body(doc)


@router.put("/account/{key}")
def put_account_setting(key: str, body: ValuePut, ledger: LedgerDep, idem: IdempotencyDep,
                        if_match: IfMatchDep,
                        caller: Annotated[Caller, Depends(authorize("settings.account.write"))],
                        account_id: AccountQ = None) -> JSONResponse:
    """Account-wide defaults of a settings key (the user keys but ai_settings; account AI
    overrides are /integrations). 422 names the failing path; nothing is recorded."""
    return reply_versioned(ledger.settings_service.put_document(
        Scope.ACCOUNT, caller.account(account_id), "", key, body.value, caller.actor,
        if_match=if_match, idem=idem, respond=respond_saved))


# -- integration overrides ---------------------------------------------------------------------

@router.get("/integrations/{integration_type}")
def get_integration(integration_type: str, ledger: LedgerDep, response: Response,
                    caller: Annotated[Caller, Depends(authorize("settings.account.read"))],
                    account_id: AccountQ = None, as_of: AsOf = None) -> dict[str, Any]:
    """The account's override (`config`) and what the integration runs with once merged
    over the global settings (`effective`, each value with its source)."""
    service = ledger.settings_service
    account = caller.account(account_id)
    doc = service.document(Scope.INTEGRATION, account, "", integration_type, as_of)
    eff = service.effective(account, as_of=as_of)
    prefix = f"{integration_type}_"
    _tagged(response, doc)
    return json_ready({  # type: ignore[no-any-return]
        "account_id": account, "integration_type": integration_type,
        "config": {} if doc is None else doc.values,
        "version": 0 if doc is None else doc.version,
        "effective": {n.removeprefix(prefix): {"value": v, "source": eff.sources[n].as_dict()}
                      for n, v in eff.values.items() if n.startswith(prefix)}})


@router.put("/integrations/{integration_type}")
def put_integration(integration_type: str, body: dict[str, Any], ledger: LedgerDep,
                    idem: IdempotencyDep, if_match: IfMatchDep,
                    caller: Annotated[Caller, Depends(authorize("settings.account.write"))],
                    account_id: AccountQ = None) -> JSONResponse:
    """Replace the account's override of one integration. Only the allowed fields are
    kept (model, temperature, max_tokens; image_size, image_quality, image_style for
    image services); anything else, API keys included, is dropped and listed in
    `dropped_fields`."""
    return reply_versioned(ledger.settings_service.put_integration(
        caller.account(account_id), integration_type, body, caller.actor, if_match=if_match,
        idem=idem, respond=respond_saved))


# -- sites ---------------------------------------------------------------------------------------

@router.get("/sites/{site_id}/{tab}")
def get_site_tab(site_id: str, tab: str, ledger: LedgerDep,
                 response: Response,
                 caller: Annotated[Caller, Depends(authorize("settings.account.read"))],
                 account_id: AccountQ = None, as_of: AsOf = None) -> dict[str, Any]:
    doc = ledger.settings_service.document(Scope.SITE, caller.account(account_id), site_id,
                                           tab, as_of)
    if doc is None:
        raise _absent(Scope.SITE, tab)
    _tagged(response, doc)
    return doc_body(doc)


@router.put("/sites/{site_id}/{tab}")
def put_site_tab(site_id: str, tab: str, body: ValuePut, ledger: LedgerDep,
                 idem: IdempotencyDep, if_match: IfMatchDep,
                 caller: Annotated[Caller, Depends(authorize("settings.account.write"))],
                 account_id: AccountQ = None) -> JSONResponse:
    """One tab of a site's settings: general, content-generation, image-settings,
    integrations, publishing, content-types."""
    return reply_versioned(ledger.settings_service.put_document(
        Scope.SITE, caller.account(account_id), site_id, tab, body.value, caller.actor,
        if_match=if_match, idem=idem, respond=respond_saved))


# -- user ---------------------------------------------------------------------------------------

@router.get("/user")
def get_user_settings(ledger: LedgerDep,
                      caller: Annotated[Caller, Depends(authorize("settings.user.read"))],
                      key: str | None = None, account_id: AccountQ = None,
                      user_id: UserQ = None, as_of: AsOf = None) -> dict[str, Any]:
    """The calling user's settings (all keys, or `key`)."""
    account, user = _user(caller, account_id, user_id)
    service = ledger.settings_service
    docs = ([d] if (d := service.document(Scope.USER, account, user, key, as_of)) else []
            ) if key is not None else service.documents(Scope.USER, account, user, as_of)
    return {"data": [doc_body(d) for d in docs], "count": len(docs)}


@router.post("/user", status_code=201)
@router.put("/user")
def save_user_setting(body: UserSettingPut, ledger: LedgerDep, idem: IdempotencyDep,
                      if_match: IfMatchDep,
                      caller: Annotated[Caller, Depends(authorize("settings.user"))],
                      account_id: AccountQ = None, user_id: UserQ = None) -> JSONResponse:
    """Create or update `{key, value}` of the calling user (one record per user, account
    and key): 201 when created, 200 when updated. The value is checked against the
    key's schema first: 422 names the failing path and nothing is recorded."""
    account, user = _user(caller, account_id, user_id)
    return reply_versioned(ledger.settings_service.put_document(
        Scope.USER, account, user, body.key, body.value, caller.actor, if_match=if_match,
        idem=idem, respond=respond_saved))


# -- effective -----------------------------------------------------------------------------------

@router.get("/effective")
def get_effective(ledger: LedgerDep,
                  caller: Annotated[Caller, Depends(authorize("settings.effective"))],
                  account_id: AccountQ = None, user_id: UserQ = None,
                  site_id: str | None = None, as_of: AsOf = None) -> dict[str, Any]:
    """Global -> Account -> Site -> User merged; each value with its source (level,
    aggregate, version, time of change). `as_of` answers for a past moment."""
    account = caller.account(account_id)
    if caller.principal.role is Role.USER or (user_id is None and caller.principal.user_id):
        account, user_id = _user(caller, account, user_id)
    eff = ledger.settings_service.effective(account, user_id, site_id, as_of)
    return json_ready({  # type: ignore[no-any-return]
        "account_id": eff.account_id, "user_id": eff.user_id, "site_id": eff.site_id,
        "as_of": eff.as_of,
        "values": {n: {"value": v, "source": eff.sources[n].as_dict()}
                   for n, v in sorted(eff.values.items())}})
