"""Storing a NIK (Indonesian national ID number) without keeping it in clear.

A NIK is stored as a keyed hash (HMAC-SHA256 with a server-side secret) so
that duplicates can still be found, plus its last four digits so that a person
can recognise which number they registered ("************1234").
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

__all__ = ["MASK_CHAR", "NIK_LENGTH", "ProtectedNik", "mask_nik", "nik_hash", "protect_nik"]

NIK_LENGTH = 16
MASK_CHAR = "*"
_LAST_DIGITS = 4


@dataclass(frozen=True)
class ProtectedNik:
    """What is kept of a NIK: its keyed hash (hex) and its last four digits."""

    hash: str
    last4: str


def _is_ascii_digits(text: str, length: int) -> bool:
    return len(text) == length and all("0" <= char <= "9" for char in text)


def _check_nik(nik: str) -> None:
    if not _is_ascii_digits(nik, NIK_LENGTH):
        raise ValueError("a NIK must be exactly 16 ASCII digits (parse it first)")


def nik_hash(nik: str, key: bytes) -> str:
    """Hex HMAC-SHA256 of the 16 digits of ``nik`` under ``key``.

    Raises ``ValueError`` if ``nik`` is not 16 ASCII digits or ``key`` is empty.
    """
    _check_nik(nik)
    if not key:
        raise ValueError("the NIK hashing key must not be empty")
    return hmac.new(key, nik.encode("ascii"), hashlib.sha256).hexdigest()


def protect_nik(nik: str, key: bytes) -> ProtectedNik:
    """Keyed hash and last four digits of a normalised (16-digit) NIK."""
    return ProtectedNik(hash=nik_hash(nik, key), last4=nik[-_LAST_DIGITS:])


def mask_nik(last4: str) -> str:
    """The NIK as shown to a person: twelve asterisks then the last four digits."""
    if not _is_ascii_digits(last4, _LAST_DIGITS):
        raise ValueError("last4 must be exactly 4 ASCII digits")
    return MASK_CHAR * (NIK_LENGTH - _LAST_DIGITS) + last4
