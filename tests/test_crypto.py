"""services/crypto.py: AES-GCM values bound to their place, key rotation, keyed hashes, keys."""

from __future__ import annotations

import base64
import os

import pytest
from pydantic import ValidationError

from bot.config import Settings
from services.crypto import (
    HEADER_BYTES,
    KEY_BYTES,
    NONCE_BYTES,
    NONCES_PER_READ,
    DataCipher,
    DecryptionError,
    InvalidKey,
    decode_key,
    generate_key,
    key_id_of,
    row_context,
)

DRAFT = row_context("drafts.data", 1001)
PERSON = {"iin": "871008401427", "first_name": "Аяулым", "phone": "+77017771122"}


@pytest.fixture
def cipher() -> DataCipher:
    return DataCipher.from_keys(generate_key())


def test_a_value_comes_back_as_it_went_in(cipher: DataCipher) -> None:
    for plain in (b"", b"x", "Аяулым Смағұлова".encode(), bytes(range(256)) * 40):
        assert cipher.decrypt(cipher.encrypt(plain, DRAFT), DRAFT) == plain
    assert cipher.decrypt_json(cipher.encrypt_json(PERSON, DRAFT), DRAFT) == PERSON
    assert cipher.decrypt_text(cipher.encrypt_text("871008401427", DRAFT), DRAFT) == (
        "871008401427"
    )


def test_the_blob_hides_the_value_and_never_repeats(cipher: DataCipher) -> None:
    first = cipher.encrypt_json(PERSON, DRAFT)
    second = cipher.encrypt_json(PERSON, DRAFT)
    assert first != second  # a fresh nonce every time: equal values do not show as equal
    assert (
        first[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES]
        != (second[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES])
    )
    for secret in (b"871008401427", "Аяулым".encode(), b"+77017771122", b"iin"):
        assert secret not in first
    assert key_id_of(first) == cipher.key_id


def _nonce(blob: bytes) -> bytes:
    return blob[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES]


def test_nonces_are_read_from_the_os_in_bulk_and_never_handed_out_twice(
    cipher: DataCipher, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    real_urandom = os.urandom

    def counting_urandom(size: int) -> bytes:
        reads.append(size)
        return real_urandom(size)

    monkeypatch.setattr("services.crypto.os.urandom", counting_urandom)
    sealed = [cipher.encrypt_text(str(n), DRAFT) for n in range(2 * NONCES_PER_READ + 1)]

    assert reads == [NONCE_BYTES * NONCES_PER_READ] * 3  # three reads, not one per value
    assert len({_nonce(blob) for blob in sealed}) == len(sealed)  # across the refills too
    assert [cipher.decrypt_text(blob, DRAFT) for blob in sealed[-3:]] == [
        str(n) for n in range(2 * NONCES_PER_READ - 2, 2 * NONCES_PER_READ + 1)
    ]


def test_a_forked_child_never_seals_with_a_nonce_its_parent_may_use(cipher: DataCipher) -> None:
    cipher.encrypt(b"x", DRAFT)  # the pool now holds nonces the parent has not used yet
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: seal one value, send its nonce, leave without pytest's cleanup
        try:
            os.write(write_end, _nonce(cipher.encrypt(b"child", DRAFT)))
        finally:
            os._exit(0)
    os.close(write_end)
    child_nonce = os.read(read_end, NONCE_BYTES)
    os.close(read_end)
    os.waitpid(pid, 0)
    parent_nonces = {_nonce(cipher.encrypt(b"parent", DRAFT)) for _ in range(NONCES_PER_READ)}

    assert len(child_nonce) == NONCE_BYTES
    assert child_nonce not in parent_nonces


@pytest.mark.parametrize("where", [0, 1, HEADER_BYTES, HEADER_BYTES + NONCE_BYTES, -1])
def test_a_changed_byte_anywhere_is_detected(cipher: DataCipher, where: int) -> None:
    blob = bytearray(cipher.encrypt_json(PERSON, DRAFT))
    blob[where] ^= 0x01
    with pytest.raises(DecryptionError):
        cipher.decrypt(bytes(blob), DRAFT)


def test_a_cut_blob_is_refused(cipher: DataCipher) -> None:
    blob = cipher.encrypt_json(PERSON, DRAFT)
    for cut in (blob[:-1], blob[:10], b""):
        with pytest.raises(DecryptionError):
            cipher.decrypt(cut, DRAFT)


def test_a_blob_moved_to_another_row_or_column_does_not_open(cipher: DataCipher) -> None:
    blob = cipher.encrypt_json(PERSON, DRAFT)
    for elsewhere in (
        row_context("drafts.data", 1002),  # another parent's draft
        row_context("applications.personal", 1001),  # another column
        row_context("fsm_records.data", 1001),
        "",
    ):
        with pytest.raises(DecryptionError) as caught:
            cipher.decrypt(blob, elsewhere)
        assert "1001" not in str(caught.value) and "1002" not in str(caught.value)


def test_another_key_cannot_open_it(cipher: DataCipher) -> None:
    blob = cipher.encrypt_json(PERSON, DRAFT)
    stranger = DataCipher.from_keys(generate_key())
    with pytest.raises(DecryptionError, match="DATA_KEYS_OLD"):
        stranger.decrypt(blob, DRAFT)


def test_rotation_old_values_open_with_the_old_key_kept_and_new_ones_use_the_new_key() -> None:
    old_key, new_key = generate_key(), generate_key()
    before = DataCipher.from_keys(old_key)
    sealed_before = before.encrypt_json(PERSON, DRAFT)

    rotated = DataCipher.from_keys(new_key, [old_key])
    assert rotated.decrypt_json(sealed_before, DRAFT) == PERSON
    assert not rotated.is_current(sealed_before)
    sealed_after = rotated.encrypt_json(PERSON, DRAFT)
    assert rotated.is_current(sealed_after) and key_id_of(sealed_after) != key_id_of(sealed_before)
    # The old key alone cannot read what the new one sealed; the new alone not the old values.
    with pytest.raises(DecryptionError):
        before.decrypt(sealed_after, DRAFT)
    with pytest.raises(DecryptionError):
        DataCipher.from_keys(new_key).decrypt(sealed_before, DRAFT)


def test_the_keyed_hash_is_stable_and_depends_on_key_value_and_purpose() -> None:
    key = generate_key()
    one, same = DataCipher.from_keys(key), DataCipher.from_keys(key)
    digest = one.lookup_hash("+77017771122", "phone")
    assert digest == same.lookup_hash("+77017771122", "phone")  # stable across processes
    assert len(digest) == 64 and "77017771122" not in digest
    assert digest != one.lookup_hash("+77017771123", "phone")
    assert digest != one.lookup_hash("+77017771122", "iin")
    assert digest != DataCipher.from_keys(generate_key()).lookup_hash("+77017771122", "phone")


def test_lookup_hashes_match_rows_made_before_a_rotation() -> None:
    old_key, new_key = generate_key(), generate_key()
    made_before = DataCipher.from_keys(old_key).lookup_hash("+77017771122", "phone")
    rotated = DataCipher.from_keys(new_key, [old_key])
    hashes = rotated.lookup_hashes("+77017771122", "phone")
    assert hashes[0] == rotated.lookup_hash("+77017771122", "phone")
    assert made_before in hashes and len(hashes) == 2


def test_generated_keys_are_32_random_bytes_in_urlsafe_base64() -> None:
    keys = {generate_key() for _ in range(20)}
    assert len(keys) == 20
    for key in keys:
        assert len(decode_key(key)) == KEY_BYTES
        assert set(key) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")
        assert decode_key(key.rstrip("=")) == decode_key(key)  # padding optional


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not a key",
        base64.urlsafe_b64encode(b"\x01" * 16).decode(),  # AES-128 is not what we use
        base64.urlsafe_b64encode(b"\x01" * 33).decode(),
        "a" * 43 + "!",
    ],
)
def test_a_bad_key_is_refused_with_a_message_that_does_not_repeat_it(bad: str) -> None:
    with pytest.raises(InvalidKey) as caught:
        decode_key(bad)
    assert "keygen" in str(caught.value)
    if bad:
        assert bad not in str(caught.value)


def test_settings_validate_data_key_and_old_keys_without_echoing_them() -> None:
    good, old = generate_key(), generate_key()
    settings = Settings(_env_file=None, data_key=good, data_keys_old=f" {old} ,")
    cipher = settings.data_cipher()
    assert cipher is not None
    sealed_by_old = DataCipher.from_keys(old).encrypt(b"x", DRAFT)
    assert cipher.decrypt(sealed_by_old, DRAFT) == b"x"
    assert Settings(_env_file=None, data_key="  ").data_cipher() is None
    assert Settings(_env_file=None).data_cipher() is None

    secret_but_short = base64.urlsafe_b64encode(b"secret-but-short").decode()
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, data_key=secret_but_short)
    messages = " ".join(e["msg"] for e in caught.value.errors())
    assert "DATA_KEY must decode to 32 bytes" in messages and secret_but_short not in messages
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, data_key=good, data_keys_old=f"{old},{secret_but_short}")
    messages = " ".join(e["msg"] for e in caught.value.errors())
    assert "DATA_KEYS_OLD key 2" in messages and secret_but_short not in messages
