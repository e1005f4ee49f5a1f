"""Masking the API key in whatever form a server (or a proxy, or a parser) echoes it back.

The engine calls this at the one point where server-derived text becomes an error, an event or a
log record: decoded JSON strings, header values and transport error messages alike. A server
can send the key verbatim, JSON-escaped (`\\u0063og_...`, fully or partly), percent-encoded, in
a header, or inside a line that aiohttp's parser quotes in its error message (possibly cut
short). So the pattern accepts each character of the key in any of those spellings, and long
fragments of the key are masked too.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["Redactor", "mask_key"]

#: The shortest run of the key's characters masked on its own (a cut-off echo).
MIN_FRAGMENT = 12


def mask_key(key: str) -> str:
    """Return a printable stand-in for an API key: at most `cog_…last4`."""
    prefix = "cog_" if key.startswith("cog_") else ""
    if len(key) < 12:
        return f"{prefix}…"
    return f"{prefix}…{key[-4:]}"


def _char_pattern(char: str) -> str:
    code = ord(char)
    forms = [re.escape(char), rf"\\u(?i:{code:04x})", rf"%(?i:{code:02x})"]
    if char == "/":
        forms.append(r"\\/")
    return "(?:" + "|".join(forms) + ")"


class Redactor:
    """Replace a secret in text, bytes and decoded JSON with its mask."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.mask = mask_key(secret)
        self._bytes = secret.encode()
        self._mask_bytes = self.mask.encode()
        self._pattern = re.compile("".join(_char_pattern(c) for c in secret))
        # Fragments: any MIN_FRAGMENT-long run of the key, spelled plainly (a quoted line cut
        # short by a parser's message).
        self._fragments = (
            [secret[i : i + MIN_FRAGMENT] for i in range(len(secret) - MIN_FRAGMENT + 1)]
            if len(secret) > MIN_FRAGMENT else []
        )

    def text(self, value: str) -> str:
        """Return `value` with every spelling of the secret masked."""
        if not value:
            return value
        if self.secret in value:
            value = value.replace(self.secret, self.mask)
        if "\\" in value or "%" in value:
            value = self._pattern.sub(self.mask, value)
        if self._fragments and any(f in value for f in self._fragments):
            for fragment in self._fragments:
                if fragment in value:
                    value = re.sub(re.escape(fragment) + r"\S*", self.mask, value)
        return value

    def raw(self, body: bytes) -> bytes:
        """Return a body with the verbatim secret masked (the cheap check of every answer)."""
        if self._bytes in body:
            return body.replace(self._bytes, self._mask_bytes)
        return body

    def value(self, data: Any) -> Any:
        """Return decoded JSON with the secret masked in every string (keys included)."""
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, list):
            return [self.value(item) for item in data]
        if isinstance(data, dict):
            return {self.text(k) if isinstance(k, str) else k: self.value(v)
                    for k, v in data.items()}
        return data

    def contains(self, value: str) -> bool:
        """Return whether `value` holds the secret in any spelling this class masks."""
        return self.text(value) != value
