"""Quasi-identifier tokens, namespaced by data domain.

A token is ``tok_<tag>_<body>``: ``tag`` is six hex digits derived from the domain
name alone (public, so ``verify`` can check a token belongs to its domain), and
``body`` is the first 20 hex digits of HMAC-SHA256 over the domain, a separator
and the value. The domain is inside the HMAC, so the same name masked in two
domains yields two unrelated tokens: the cross-dataset join key of the old rubric
cannot come back.
"""

from __future__ import annotations

import hashlib
import re

from tether.masking.errors import MaskingError
from tether.masking.salts import hmac_hex

SEPARATOR = b"\x1f"
TOKEN_BODY_HEX = 20
_DOMAIN_RE = re.compile(r"^[a-z][a-z0-9-]{1,62}$")


def check_domain(domain: str) -> str:
    """Validate a domain name (lowercase letters, digits, '-'), returning it."""
    if not _DOMAIN_RE.match(domain):
        raise MaskingError(
            f"domain {domain!r}: use a lowercase name such as tool-telemetry or "
            "support-tickets (letters, digits, '-')"
        )
    return domain


def domain_tag(domain: str) -> str:
    """The public six-hex-digit tag of a domain."""
    return hashlib.sha256(b"tether-token-domain" + SEPARATOR + domain.encode()).hexdigest()[:6]


def token_prefix(domain: str) -> str:
    """The fixed start of every token of ``domain``."""
    return f"tok_{domain_tag(domain)}_"


def token_message_prefix(domain: str) -> bytes:
    """The bytes put before each value inside the HMAC."""
    return domain.encode() + SEPARATOR


def token_pattern(domain: str) -> str:
    """A regular expression matching exactly the tokens of ``domain``."""
    return f"^{token_prefix(domain)}[0-9a-f]{{{TOKEN_BODY_HEX}}}$"


def tokenise(key: bytes, domain: str, value: str) -> str:
    """The token of ``value`` in ``domain``."""
    digest = hmac_hex(key, token_message_prefix(domain) + value.encode())
    return token_prefix(domain) + digest[:TOKEN_BODY_HEX]
