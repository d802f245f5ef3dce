"""The closed vocabulary of reject codes (contract section 8) and record outcomes."""

from __future__ import annotations

from typing import Final

MALFORMED: Final = "malformed"
TOO_LARGE: Final = "too_large"
UNKNOWN_DEVICE: Final = "unknown_device"
DEVICE_MISMATCH: Final = "device_mismatch"
UNTRUSTED_CERT: Final = "untrusted_cert"
CERT_EXPIRED: Final = "cert_expired"
CERT_REVOKED: Final = "cert_revoked"
BAD_SIGNATURE: Final = "bad_signature"
NOT_BONDED: Final = "not_bonded"
UNKNOWN_TYPE: Final = "unknown_type"
SCHEMA_INVALID: Final = "schema_invalid"
RATE_LIMITED: Final = "rate_limited"

REJECT_CODES: Final = frozenset(
    {
        MALFORMED,
        TOO_LARGE,
        UNKNOWN_DEVICE,
        DEVICE_MISMATCH,
        UNTRUSTED_CERT,
        CERT_EXPIRED,
        CERT_REVOKED,
        BAD_SIGNATURE,
        NOT_BONDED,
        UNKNOWN_TYPE,
        SCHEMA_INVALID,
        RATE_LIMITED,
    }
)

ACCEPTED: Final = "accepted"
DUPLICATE: Final = "duplicate"
REJECTED: Final = "rejected"

MAX_RECORD_BYTES: Final = 16 * 1024
SIGNATURE_BYTES: Final = 64
