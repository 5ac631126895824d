"""Sealing provider API keys at rest (Fernet: AES-128-CBC with HMAC-SHA256).

A plaintext key exists only in the request that sets it and in the provider adapter that
uses it. Everything stored is ``fernet:<token>``; every response shows ``mask(key)``.

Rotation of LEDGER_SECRET_KEY
-----------------------------
LEDGER_SECRET_KEY holds one or more keys separated by commas. The FIRST seals every new
secret; all of them can open a stored one. To rotate:

1. generate a key: ``ledger secrets new-key``;
2. deploy with ``LEDGER_SECRET_KEY=<new>,<old>`` (every process reads both);
3. run ``ledger secrets rotate``: it opens each stored API key and records it sealed
   under the new key (a ``SecretsResealed`` event; nothing else changes);
4. deploy with ``LEDGER_SECRET_KEY=<new>``.

The event log is append-only: the ciphertexts written under the old key stay in it. The
current keys no longer depend on the old key after step 3, but anyone holding the old key
and a copy of the log can still open the secrets of that time. If the old key leaked,
rotate the provider API keys themselves too.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ledger.config import Settings
from ledger.domain.settings import SEALED_PREFIX


class SecretUnreadable(Exception):
    """A sealed value none of the configured keys can open (the message names no secret)."""


class SecretBox:
    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("LEDGER_SECRET_KEY holds no key")
        try:
            fernets = [Fernet(k.strip().encode()) for k in keys]
        except ValueError:
            raise ValueError("each LEDGER_SECRET_KEY key must be urlsafe base64 of 32 "
                             "bytes (see `ledger secrets new-key`)") from None
        self._current = fernets[0]
        self._all = MultiFernet(fernets)

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        return cls([k for k in settings.resolve_secret_key().split(",") if k.strip()])

    @staticmethod
    def new_key() -> str:
        return Fernet.generate_key().decode()

    def seal(self, plaintext: str) -> str:
        return SEALED_PREFIX + self._current.encrypt(plaintext.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._all.decrypt(self._token(sealed)).decode()
        except InvalidToken:
            raise SecretUnreadable("a stored secret cannot be opened with any key of "
                                   "LEDGER_SECRET_KEY") from None

    def reseal(self, sealed: str) -> str | None:
        """The same secret sealed under the current key; None if it already is."""
        token = self._token(sealed)
        try:
            self._current.decrypt(token)
            return None
        except InvalidToken:
            pass
        try:
            return SEALED_PREFIX + self._all.rotate(token).decode()
        except InvalidToken:
            raise SecretUnreadable("a stored secret cannot be opened with any key of "
                                   "LEDGER_SECRET_KEY") from None

    def mask_sealed(self, sealed: str | None) -> str | None:
        if sealed is None:
            return None
        try:
            return mask(self.open(sealed))
        except SecretUnreadable:
            return "****"

    @staticmethod
    def _token(sealed: str) -> bytes:
        if not sealed.startswith(SEALED_PREFIX):
            raise SecretUnreadable("not a sealed value")
        return sealed.removeprefix(SEALED_PREFIX).encode()


def mask(plaintext: str) -> str:
    """What a response shows of a key: its usual prefix and last four characters."""
    if len(plaintext) < 12:
        return "****"
    prefix = "sk-..." if plaintext.startswith("sk-") else "****"
    return prefix + plaintext[-4:]
