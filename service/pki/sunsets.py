"""When algorithms stop protecting what they signed: the sunset dates long-term validity plans by.

The PKI replaces a CA or the TSA before its key weakens, and archive timestamps are added before a
timestamp's key does (``service.documents.ltv``); both read the dates here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from asn1crypto import keys


def _utc(year: int) -> dt.datetime:
    return dt.datetime(year, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class AlgorithmSunsets:
    """From when an algorithm no longer protects a timestamp (a new one must be on top by then).

    Defaults follow NIST SP 800-57 Part 1 Rev. 5 and SP 800-131A: SHA-1 and keys under 112 bits of
    security are already weak; 112 bits (RSA-2048, SHA-224, P-224) are acceptable through 2030.
    """

    #: Digest algorithm (asn1crypto name) -> first day it is weak.
    digests: Mapping[str, dt.datetime] = field(
        default_factory=lambda: {"md5": _utc(2005), "sha1": _utc(2017), "sha224": _utc(2031)}
    )
    #: (key type, bits below which) -> first day such a key is weak, the strictest listed first.
    key_sizes: tuple[tuple[str, int, dt.datetime], ...] = (
        ("rsa", 2048, _utc(2014)),
        ("rsa", 3072, _utc(2031)),
        ("ec", 224, _utc(2014)),
        ("ec", 256, _utc(2031)),
    )

    def weak_from(self, digest: str, key: keys.PublicKeyInfo) -> tuple[dt.datetime, str] | None:
        """The earliest day the token's algorithms are weak, and which one, or None."""
        found: list[tuple[dt.datetime, str]] = []
        if digest in self.digests:
            found.append((self.digests[digest], digest.upper()))
        algorithm, bits = key.algorithm, key.bit_size
        for kind, below, since in self.key_sizes:
            if algorithm == kind and bits < below:
                found.append((since, f"{algorithm.upper()}-{bits}"))
                break
        return min(found) if found else None


DEFAULT_SUNSETS = AlgorithmSunsets()
