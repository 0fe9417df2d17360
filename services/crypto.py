"""Encryption of personal data at rest: AES-256-GCM with a key from `DATA_KEY`.

Every sealed value is one self-describing blob:

    version (1 byte) │ key id (8 bytes) │ nonce (12 bytes, random) │ ciphertext + GCM tag (16)

- The key id names the key that sealed the value, so a key can be rotated: `DATA_KEY` seals,
  and `DATA_KEYS_OLD` still opens what older keys sealed (see docs/security.md).
- The associated data is the header plus a *context* such as `drafts.data:1001`: the table,
  the column and the row. A blob copied to another row or column fails to open, as does a
  blob with a single bit changed.
- Keys are never used directly: HKDF derives an encryption sub-key and a lookup sub-key from
  the 32 bytes of `DATA_KEY`, so the keyed hash (`lookup_hash`) never shares a key with AES.

No aiogram here, and no global state: the bot builds one `DataCipher` from its settings.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
NONCE_BYTES = 12
KEY_ID_BYTES = 8
VERSION = 1
HEADER_BYTES = 1 + KEY_ID_BYTES
MIN_BLOB_BYTES = HEADER_BYTES + NONCE_BYTES + 16  # an empty plaintext still has its tag
NONCES_PER_READ = 1024

_ENCRYPTION_INFO = b"kezek/v1/aes-256-gcm"
_LOOKUP_INFO = b"kezek/v1/lookup-hmac-sha256"
_KEY_ID_INFO = b"kezek/v1/key-id"


class InvalidKey(ValueError):
    """A key that is not 32 bytes of urlsafe base64 (the message never repeats the key)."""


class DecryptionError(ValueError):
    """A blob that cannot be opened: tampered, moved from another row, or an unknown key."""


def generate_key() -> str:
    """A new random 32-byte key as urlsafe base64 (44 characters), for `DATA_KEY`."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def decode_key(text: str) -> bytes:
    """The 32 bytes of a key written as urlsafe base64 (padding optional); raises InvalidKey."""
    compact = text.strip()
    padded = compact + "=" * (-len(compact) % 4)
    try:
        raw = base64.b64decode(padded, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise InvalidKey(
            "must be urlsafe base64 (letters, digits, '-' and '_'); "
            "make one with `voucher-bot keygen`"
        ) from None
    if len(raw) != KEY_BYTES:
        raise InvalidKey(
            f"must decode to {KEY_BYTES} bytes, not {len(raw)}; make one with `voucher-bot keygen`"
        )
    return raw


def _derive(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(key)


@dataclass(frozen=True, slots=True)
class _Key:
    key_id: bytes
    aead: AESGCM
    lookup: bytes

    @classmethod
    def from_raw(cls, raw: bytes) -> _Key:
        key_id = hmac.new(raw, _KEY_ID_INFO, hashlib.sha256).digest()[:KEY_ID_BYTES]
        return cls(key_id, AESGCM(_derive(raw, _ENCRYPTION_INFO)), _derive(raw, _LOOKUP_INFO))


class _NoncePool:
    """Random nonces read from the operating system many at a time.

    Why not `os.urandom` per nonce: the call gives up the GIL for its system call, and in a rush
    the SQLite writer's thread is waiting for it, so the event loop then waits its turn to get
    it back: about 30 µs per sealed value instead of 0.3 µs (docs/performance.md, eighth pass).
    These are the same bytes of the kernel's generator, read `batch` nonces at once; each is
    handed out once.
    """

    def __init__(self, size: int, batch: int = NONCES_PER_READ) -> None:
        self._size = size
        self._batch = batch
        self._lock = threading.Lock()  # the writer's thread seals too (re-sealing old rows)
        self._bytes = b""
        self._next = 0
        self._pid = os.getpid()

    def take(self) -> bytes:
        """The next unused nonce."""
        with self._lock:
            pid = os.getpid()
            # A forked child drops what its parent read: the two must never share a nonce.
            if pid != self._pid or self._next + self._size > len(self._bytes):
                self._bytes = os.urandom(self._size * self._batch)
                self._next = 0
                self._pid = pid
            start = self._next
            self._next = start + self._size
            return self._bytes[start : self._next]


class DataCipher:
    """Seals and opens values with the current key; opens with retired keys too."""

    def __init__(self, current: bytes, old: Iterable[bytes] = ()) -> None:
        """Keys as raw bytes; use `DataCipher.from_keys` for the base64 text of settings."""
        self._nonces = _NoncePool(NONCE_BYTES)
        self._current = _Key.from_raw(current)
        self._keys: dict[bytes, _Key] = {self._current.key_id: self._current}
        for raw in old:
            key = _Key.from_raw(raw)
            self._keys.setdefault(key.key_id, key)

    @classmethod
    def from_keys(cls, current: str, old: Iterable[str] = ()) -> DataCipher:
        """Build from `DATA_KEY` and `DATA_KEYS_OLD` as written in the settings."""
        return cls(decode_key(current), [decode_key(k) for k in old])

    @property
    def key_id(self) -> bytes:
        """The id of the key that seals new values (what `key_id_of` reads back)."""
        return self._current.key_id

    # --- sealing ----------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes, context: str) -> bytes:
        """Seal `plaintext` for the place named by `context` (`table.column:row`)."""
        header = bytes([VERSION]) + self._current.key_id
        nonce = self._nonces.take()
        sealed = self._current.aead.encrypt(nonce, plaintext, _aad(header, context))
        return header + nonce + sealed

    def decrypt(self, blob: bytes, context: str) -> bytes:
        """Open a blob sealed for the same `context`; raises DecryptionError otherwise."""
        blob = bytes(blob)
        if len(blob) < MIN_BLOB_BYTES or blob[0] != VERSION:
            raise DecryptionError(f"{_place(context)}: not an encrypted value of this format")
        header, nonce, sealed = (
            blob[:HEADER_BYTES],
            blob[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES],
            blob[HEADER_BYTES + NONCE_BYTES :],
        )
        key = self._keys.get(header[1:])
        if key is None:
            raise DecryptionError(
                f"{_place(context)}: sealed with key {header[1:].hex()}, which is neither "
                "DATA_KEY nor in DATA_KEYS_OLD"
            )
        try:
            return key.aead.decrypt(nonce, sealed, _aad(header, context))
        except InvalidTag:
            raise DecryptionError(
                f"{_place(context)}: authentication failed (changed, or moved from another row)"
            ) from None

    def encrypt_text(self, text: str, context: str) -> bytes:
        """Seal a string (UTF-8)."""
        return self.encrypt(text.encode("utf-8"), context)

    def decrypt_text(self, blob: bytes, context: str) -> str:
        """Open a sealed string."""
        return self.decrypt(blob, context).decode("utf-8")

    def encrypt_json(self, value: Any, context: str) -> bytes:
        """Seal a JSON value (compact, UTF-8)."""
        return self.encrypt_text(
            json.dumps(value, ensure_ascii=False, separators=(",", ":")), context
        )

    def decrypt_json(self, blob: bytes, context: str) -> Any:
        """Open a sealed JSON value."""
        return json.loads(self.decrypt_text(blob, context))

    def is_current(self, blob: bytes) -> bool:
        """True when `blob` was sealed by the current key (rotation re-seals the others)."""
        return key_id_of(blob) == self._current.key_id

    # --- keyed hash for lookups -------------------------------------------------------------

    def lookup_hash(self, value: str, purpose: str) -> str:
        """HMAC-SHA256 of `value` under the current key's lookup sub-key, as hex.

        Equal values give equal hashes (so a column can be searched), but without the key a
        hash cannot be tested against guesses — an IIN or a phone has too few possible values
        for a plain hash to hide it. `purpose` ("phone", …) separates the uses.
        """
        return _hmac(self._current.lookup, value, purpose)

    def lookup_hashes(self, value: str, purpose: str) -> list[str]:
        """The hash under every known key, current first: matches rows made before a rotation."""
        found = [self.lookup_hash(value, purpose)]
        for key in self._keys.values():
            digest = _hmac(key.lookup, value, purpose)
            if digest not in found:
                found.append(digest)
        return found


def key_id_of(blob: bytes | None) -> bytes | None:
    """The key id in a sealed blob's header, or None for anything else."""
    if blob is None:
        return None
    raw = bytes(blob)
    if len(raw) < MIN_BLOB_BYTES or raw[0] != VERSION:
        return None
    return raw[1:HEADER_BYTES]


def row_context(table_column: str, *row: object) -> str:
    """The associated-data context of one value: `drafts.data:1001`, `outbox.text:key`."""
    return table_column + ":" + "|".join(str(part) for part in row)


def _aad(header: bytes, context: str) -> bytes:
    return header + b"|" + context.encode("utf-8")


def _hmac(key: bytes, value: str, purpose: str) -> str:
    message = purpose.encode("utf-8") + b"\x00" + value.encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _place(context: str) -> str:
    # Only the table and column: the row part may be an id worth keeping out of error text.
    return context.split(":", 1)[0]
