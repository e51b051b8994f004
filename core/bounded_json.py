"""JSON from a tenant, parsed only once its shape is known to be bounded.

`json.loads` turns every value into a Python object (a 20 MiB body of small values costs 20x that in objects) and
recurses once per level of nesting (deep nesting raises RecursionError). So the raw text is scanned first, in C
(one regular expression; a string is one match however long it is): nesting deeper than `max_depth` or more than
`max_values` values is refused before a single object is built."""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 32
MAX_VALUES = 20_000
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[{]|[\]}]|,', re.DOTALL)


class InvalidJSON(ValueError):
    """JSON that cannot be parsed or whose shape is over the bounds; the message says which."""


def check_shape(text: str, max_depth: int = MAX_DEPTH, max_values: int = MAX_VALUES) -> None:
    depth = 0
    for values, match in enumerate(_TOKENS.finditer(text), start=1):
        char = text[match.start()]  # never match.group(): a long string would be copied
        if char in "[{":
            depth += 1
            if depth > max_depth:
                raise InvalidJSON(f"the JSON is nested deeper than {max_depth} levels")
        elif char in "]}":
            depth -= 1
        if values > max_values:
            raise InvalidJSON(f"the JSON has more than {max_values} values")


def loads(raw: bytes | str, max_depth: int = MAX_DEPTH, max_values: int = MAX_VALUES) -> Any:
    """Parse JSON within the bounds; InvalidJSON otherwise (never RecursionError or MemoryError from the shape)."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
    except UnicodeDecodeError as exc:
        raise InvalidJSON(f"the body is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    check_shape(text, max_depth, max_values)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidJSON(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:  # cannot happen within max_depth; kept so no input ever reaches a 500
        raise InvalidJSON("the JSON is nested too deeply") from exc
