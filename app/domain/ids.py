"""ULIDs: 26-character ids that sort by creation time (spec/api.md's `id`).

The clock and the randomness are passed in, so the rule is testable; within
one millisecond the random part is incremented, so ids made by one process
stay strictly increasing even when many arrive at once.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
_FROM_RFC4648 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET.encode())


def encode_ulid(timestamp_ms: int, randomness: int) -> str:
    # 128 bits right-aligned in 160 (32 base32 digits, no padding), the top six digits
    # always zero: the standard library's base32 does the work in C, then the alphabet
    # is swapped for Crockford's. A digit-by-digit loop cost microseconds per request.
    value = (timestamp_ms << 80) | randomness
    digits = base64.b32encode(value.to_bytes(20, "big"))[6:]
    return digits.translate(_FROM_RFC4648).decode("ascii")


@dataclass
class UlidFactory:
    """Monotonic ULIDs from an injected millisecond clock and 80-bit random source."""

    clock_ms: Callable[[], int]
    random80: Callable[[], int]
    _last: tuple[int, int] = field(default=(-1, 0), repr=False)

    def __call__(self) -> str:
        now = self.clock_ms()
        last_ms, last_random = self._last
        if now <= last_ms:
            now, randomness = last_ms, last_random + 1
        else:
            randomness = self.random80() >> 1  # headroom so increments never overflow 80 bits
        self._last = (now, randomness)
        return encode_ulid(now, randomness)
