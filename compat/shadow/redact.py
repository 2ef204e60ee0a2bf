"""Compat layer: keep personal data (emails, names, IP addresses, codes) out of logs and reports."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from typing import Any, Final

import layer_settings

__all__ = ["PERSONAL_FIELDS", "redact", "redact_text", "redaction_enabled", "show"]

PERSONAL_FIELDS: Final = frozenset(
    {"name", "email", "ip_address", "verification_code", "code", "filename", "storage_key"}
)
"""Column and argument names whose values are personal data wherever they appear."""

_EMAIL = re.compile(r"[^\s@'\"<>(),;]+@[^\s@'\"<>(),;]+")
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
_H = "[0-9a-fA-F]{1,4}"
# Full (eight groups) or compressed with "::" (2001:db8::1, ::1, fe80::1%eth0); a
# clock time such as 12:30:45 is neither.
_IPV6 = re.compile(
    rf"(?<![\w:])(?:(?:{_H}:){{7}}{_H}|(?:{_H}(?::{_H}){{0,6}})?::(?:{_H}(?::{_H}){{0,6}})?)"
    r"(?:%\w+)?(?![\w:])"
)


def redaction_enabled() -> bool:
    """On unless COMPAT_REDACT=0, which is for local debugging on data that is not personal."""
    return layer_settings.current().redact


# A plain hash of a six-digit code or an IPv4 address is reversed by hashing
# every candidate; keyed with a secret that never leaves the process, it is not.
_DIGEST_KEY: Final = os.urandom(32)


def _token(value: object) -> str:
    # A short digest lets a reader see that two redacted values are equal (or
    # not) without seeing either; it is not a way to look the value up.
    message = repr(value).encode("utf-8", "backslashreplace")
    digest = hmac.new(_DIGEST_KEY, message, hashlib.sha256).hexdigest()[:8]
    return f"<redacted {type(value).__name__} #{digest}>"


def redact_text(text: str) -> str:
    """Replace email addresses and IP addresses inside free text (error messages, say)."""
    if not redaction_enabled():
        return text
    text = _EMAIL.sub("<redacted email>", text)
    text = _IPV4.sub("<redacted ip>", text)
    return _IPV6.sub("<redacted ip>", text)


def redact(value: Any, field: str | None = None) -> Any:
    """A copy of ``value`` with personal data replaced, recursing into mappings and sequences."""
    if not redaction_enabled():
        return value
    if field in PERSONAL_FIELDS and value is not None:
        return _token(value)
    if isinstance(value, Mapping):
        return {
            key: redact(item, key if isinstance(key, str) else None) for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(redact(item, field) for item in value)
    if isinstance(value, (set, frozenset)):
        return sorted((redact(item, field) for item in value), key=repr)
    if isinstance(value, str):
        return redact_text(value)
    return value


def show(value: Any, field: str | None = None) -> str:
    """``repr`` of the redacted value, for diffs and log lines."""
    return repr(redact(value, field))
