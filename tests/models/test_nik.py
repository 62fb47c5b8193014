"""Tests for storing a NIK without keeping it in clear (gotong.models.nik)."""

from __future__ import annotations

import hashlib
import hmac
import string

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gotong.models.nik import ProtectedNik, mask_nik, nik_hash, protect_nik

property_settings = settings(database=None, deadline=None, max_examples=200)

NIK = "3171011508900001"
KEY = b"test-key-not-a-secret"

niks = st.text(alphabet="0123456789", min_size=16, max_size=16)
keys = st.binary(min_size=1, max_size=64)


def test_nik_hash_is_hex_hmac_sha256() -> None:
    expected = hmac.new(KEY, NIK.encode("ascii"), hashlib.sha256).hexdigest()
    assert nik_hash(NIK, KEY) == expected
    assert len(expected) == 64
    assert set(expected) <= set(string.hexdigits.lower())


def test_protect_nik() -> None:
    protected = protect_nik(NIK, KEY)
    assert protected == ProtectedNik(hash=nik_hash(NIK, KEY), last4="0001")
    assert NIK not in repr(protected)


def test_protected_nik_is_frozen() -> None:
    protected = protect_nik(NIK, KEY)
    with pytest.raises(AttributeError):
        protected.last4 = "9999"  # type: ignore[misc]


def test_different_niks_hash_differently() -> None:
    assert nik_hash(NIK, KEY) != nik_hash("3171011508900002", KEY)


@pytest.mark.parametrize(
    "nik",
    [
        "",
        "317101150890000",
        "31710115089000011",
        "3171 0115 0890 0001",
        "317101150890000A",
        "３１７１０１１５０８９００００１",
    ],
)
def test_nik_hash_refuses_unnormalised_nik(nik: str) -> None:
    with pytest.raises(ValueError, match="16 ASCII digits"):
        nik_hash(nik, KEY)
    with pytest.raises(ValueError, match="16 ASCII digits"):
        protect_nik(nik, KEY)


def test_nik_hash_refuses_empty_key() -> None:
    with pytest.raises(ValueError, match="key"):
        nik_hash(NIK, b"")


@pytest.mark.parametrize(
    ("last4", "expected"),
    [("1234", "************1234"), ("0001", "************0001"), ("0000", "************0000")],
)
def test_mask_nik(last4: str, expected: str) -> None:
    assert mask_nik(last4) == expected
    assert len(mask_nik(last4)) == 16


@pytest.mark.parametrize("last4", ["", "123", "12345", "12a4", "１２３４", NIK])
def test_mask_nik_refuses_bad_last4(last4: str) -> None:
    with pytest.raises(ValueError, match="4 ASCII digits"):
        mask_nik(last4)


@property_settings
@given(nik=niks, key=keys)
def test_protect_nik_is_deterministic_per_key(nik: str, key: bytes) -> None:
    assert protect_nik(nik, key) == protect_nik(nik, key)
    assert protect_nik(nik, key).hash == nik_hash(nik, key)


@property_settings
@given(nik=niks, key=keys, other_key=keys)
def test_protect_nik_differs_across_keys(nik: str, key: bytes, other_key: bytes) -> None:
    # HMAC pads keys shorter than the block size (64 bytes) with zero bytes, so
    # b"k" and b"k\0" are the same key; real keys are random 32-byte secrets.
    assume(key.rstrip(b"\0") != other_key.rstrip(b"\0"))
    assert protect_nik(nik, key).hash != protect_nik(nik, other_key).hash


def test_keys_differing_in_one_byte_give_different_hashes() -> None:
    assert nik_hash(NIK, b"key-1") != nik_hash(NIK, b"key-2")


@property_settings
@given(nik=niks, key=keys)
def test_hash_never_contains_the_nik(nik: str, key: bytes) -> None:
    protected = protect_nik(nik, key)
    assert nik not in protected.hash
    assert nik[:12] not in protected.hash
    assert protected.last4 == nik[-4:]
    assert mask_nik(protected.last4) == "*" * 12 + nik[-4:]
