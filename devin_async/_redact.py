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


_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|%([0-9a-fA-F]{2})")


def _unescape(text: str) -> str:
    """Return `text` with JSON `\\uXXXX` and percent escapes decoded (for matching only)."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1) or m.group(2), 16)), text)


def _char_pattern(char: str) -> str:
    code = ord(char)
    forms = [re.escape(char), rf"\\u(?i:{code:04x})", rf"%(?i:{code:02x})"]
    if char == "/":
        forms.append(r"\\/")
    return "(?:" + "|".join(forms) + ")"


#: How deep `Redactor.value` walks decoded JSON.
MAX_DEPTH = 100
#: Session secret values shorter than this are not masked on their own (too likely to be a
#: word of any message).
MIN_SECRET = 4


class Redactor:
    """Replace a secret in text, bytes and decoded JSON with its mask.

    `others` are further values to mask (a create's session secrets), shown as `<redacted>`.
    """

    def __init__(self, secret: str, others: tuple[str, ...] = ()) -> None:
        self.others = tuple(sorted({o for o in others if len(o) >= MIN_SECRET}, key=len,
                                   reverse=True))
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

    def with_secrets(self, values: tuple[str, ...]) -> Redactor:
        """Return a redactor that also masks `values` (in any spelling the key is masked in)."""
        return Redactor(self.secret, self.others + values)

    def text(self, value: str) -> str:
        """Return `value` with every spelling of the secret masked."""
        if not value:
            return value
        for other in self.others:
            if other in value:
                value = value.replace(other, "<redacted>")
            if ("\\" in value or "%" in value) and (
                    hidden := _unescape(value)) != value and other in hidden:
                value = hidden.replace(other, "<redacted>")
        if self.secret in value:
            value = value.replace(self.secret, self.mask)
        if "\\" in value or "%" in value:
            value = self._pattern.sub(self.mask, value)
        if self._fragments:
            if ("\\" in value or "%" in value) and any(
                    f in (hidden := _unescape(value)) for f in self._fragments):
                value = hidden  # an escaped, cut-off echo: mask it in its plain spelling
            if any(f in value for f in self._fragments):
                for fragment in self._fragments:
                    if fragment in value:
                        value = re.sub(re.escape(fragment) + r"\S*", self.mask, value)
        return value

    def raw(self, body: bytes) -> bytes:
        """Return a body with the verbatim secret masked (the cheap check of every answer)."""
        if self._bytes in body:
            return body.replace(self._bytes, self._mask_bytes)
        return body

    def value(self, data: Any, depth: int = 0) -> Any:
        """Return decoded JSON with the secret masked in every string (keys included).

        Below MAX_DEPTH levels a value is replaced by a marker: a body nested that deep is not
        walked (nor kept), so no RecursionError and no unmasked string can come out of it.
        """
        if isinstance(data, str):
            return self.text(data)
        if depth >= MAX_DEPTH and isinstance(data, list | dict):
            return "<nested too deep>"
        if isinstance(data, list):
            return [self.value(item, depth + 1) for item in data]
        if isinstance(data, dict):
            return {self.text(k) if isinstance(k, str) else k: self.value(v, depth + 1)
                    for k, v in data.items()}
        return data

    def contains(self, value: str) -> bool:
        """Return whether `value` holds the secret in any spelling this class masks."""
        return self.text(value) != value
