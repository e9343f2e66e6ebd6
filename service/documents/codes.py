"""Verification codes: 140 random bits, printed as a QR code and as a code a person can type.

Codes use Crockford's base32 alphabet (no I, L, O, U), so a parent who reads ``0`` as ``O`` or
``1`` as ``I`` still types a valid code; :func:`normalize_code` folds those look-alikes back.
"""

from __future__ import annotations

import re
import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: 28 symbols of 5 bits: 140 bits from ``secrets``, above the 128 bits the design requires.
CODE_LENGTH = 28
GROUP = 4

_FOLD = str.maketrans({"O": "0", "I": "1", "L": "1", "-": None, " ": None})
_VALID = re.compile(f"^[{ALPHABET}]{{{CODE_LENGTH}}}$")


def new_code() -> str:
    """A fresh verification code in its compact form (what the URL carries)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def display_code(code: str) -> str:
    """The printed form: groups of four joined by hyphens (``K7Q3-M9XD-...``)."""
    return "-".join(code[i : i + GROUP] for i in range(0, len(code), GROUP))


def normalize_code(text: str) -> str | None:
    """The compact code a person meant, or None if the text cannot be a code."""
    folded = text.strip().upper().translate(_FOLD)
    return folded if _VALID.match(folded) else None


def verification_url(public_base_url: str, code: str) -> str:
    return f"{public_base_url.rstrip('/')}/v/{code}"
