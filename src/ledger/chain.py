"""The audit chain: every stored event sealed with a keyed MAC, the seals chained in
notification order.

For the event stored at notification id ``n`` (see README, "Audit trail"):

    seal_n = HMAC(K, "ledger-event" | n | version | originator id | topic | state)
    hash_n = HMAC(K, hash_(previous link) | seal_n | version | originator id)
    hash_0 = 32 zero bytes

``K`` is derived (HKDF-SHA256) from a key of LEDGER_SECRET_KEY, so someone who can
write to the database but does not hold that secret cannot compute a seal or a link. The
seal says *what* was stored at ``n``; the hash says *what came before it*. Keeping both
lets a verifier tell an edited row (its seal fails, its link holds) from a removed one
(the next link no longer follows) and from one slipped in (neither holds).

This module is the arithmetic; ledger.recorders writes the links, ledger.integrity
checks them.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ledger.config import Settings

GENESIS = bytes(32)  # the "previous hash" of the first link
HKDF_INFO = b"ledger audit chain v1"
_NUMBERS = struct.Struct(">QQ")
_VERSION = struct.Struct(">Q")
_LENGTH = struct.Struct(">I")


@dataclass(frozen=True)
class Link:
    """One row of the chain table: what was stored at a notification id, sealed."""

    notification_id: int
    originator_id: UUID | str
    originator_version: int
    key_id: str
    seal: bytes
    hash: bytes


@dataclass(frozen=True)
class ChainKey:
    id: str  # names the key in each link, so that links survive a key rotation
    secret: bytes = field(repr=False)

    @classmethod
    def derive(cls, material: str) -> ChainKey:
        secret = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                      info=HKDF_INFO).derive(material.encode())
        return cls(hmac.new(secret, b"key id", hashlib.sha256).hexdigest()[:12], secret)

    def seal(self, notification_id: int, originator_id: UUID | str, version: int,
             topic: str, state: bytes) -> bytes:
        oid, name = str(originator_id).encode(), topic.encode()
        message = b"".join((b"ledger-event", _NUMBERS.pack(notification_id, version),
                            _LENGTH.pack(len(oid)), oid, _LENGTH.pack(len(name)), name,
                            state))
        return hmac.digest(self.secret, message, "sha256")

    def link(self, previous: bytes, seal: bytes, originator_id: UUID | str,
             version: int) -> bytes:
        """The hash of a link: it covers the previous one, the seal and the link's own
        note of the aggregate and version (so that a deleted event is located by
        authenticated values)."""
        return hmac.digest(self.secret, b"".join((previous, seal, _VERSION.pack(version),
                                                  str(originator_id).encode())), "sha256")

    def chain(self, previous: bytes, notification_ids: Sequence[int],
              stored_events: Sequence[Any]) -> list[Link]:
        """The links of events just stored at `notification_ids`, after `previous`."""
        links = []
        for n, e in zip(notification_ids, stored_events, strict=True):
            seal = self.seal(n, e.originator_id, e.originator_version, e.topic, e.state)
            previous = self.link(previous, seal, e.originator_id, e.originator_version)
            links.append(Link(n, e.originator_id, e.originator_version, self.id, seal,
                              previous))
        return links


class ChainKeys:
    """The keys of LEDGER_SECRET_KEY as chain keys: the first seals, all verify."""

    def __init__(self, keys: Sequence[ChainKey]) -> None:
        if not keys:
            raise ValueError("LEDGER_SECRET_KEY holds no key")
        self.current = keys[0]
        self.by_id = {k.id: k for k in keys}

    @classmethod
    def from_settings(cls, settings: Settings) -> ChainKeys:
        return cls([ChainKey.derive(k.strip())
                    for k in settings.resolve_secret_key().split(",") if k.strip()])
