"""What every webhook (and the playground's socket) does with what a stranger sends:
secrets compared as bytes, JSON parsed within bounds.

Header values come to us as text decoded from whatever bytes were sent: invalid UTF-8
arrives as lone surrogates, which `str.encode()` and `hmac.compare_digest` on text refuse
with an exception (a 500, and a traceback in the log). JSON nested thousands deep makes
the parser recurse until Python's limit.
"""

from __future__ import annotations

import hmac
import json
from typing import Any


def same_secret(given: str | None, expected: str) -> bool:
    """Whether a header holds the secret, compared in constant time; never raises."""
    if given is None or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                               expected.encode("utf-8", "surrogateescape"))


def parse_json(body: bytes | str) -> Any:
    """The JSON document of a body; ValueError for anything else, however deep."""
    try:
        return json.loads(body)
    except RecursionError:
        raise ValueError("JSON nested too deep") from None
