"""tether's own error tree.

Every error a user can meet is one of these, with a message that says what went
wrong and what to do about it. Driver exceptions (SQLite, OpenSSL, PKCS#11,
subprocesses) are translated into this tree at the adapter boundary.

    TetherError
    ├── SettingsError            a configuration key is missing or malformed
    ├── EngineError              an engine (database, broker, token) failed or is missing
    │   ├── MissingExtraError    an optional dependency is not installed
    │   └── MigrationRequiredError   a database's schema is behind: run tether migrate
    ├── CustodyError             a key could not be created, found or used
    ├── IdentityError            a certificate, CSR or serial is not acceptable
    │   ├── InvalidSerialError
    │   ├── CSRRejectedError
    │   └── CertificateRejectedError   carries a contract reject code
    ├── RecordRejectedError      a device record is refused, with a contract reject code
    ├── ClassPackError           a device class pack is malformed
    ├── AuthenticationError      a bearer token is missing, unknown or revoked
    ├── PermissionDeniedError    the caller is known but may not act on this thing
    ├── NotFoundError            a tenant, CA or device does not exist
    ├── ConflictError            the thing already exists or is in the wrong state
    ├── MaskingError             the masking pipeline refused its input or rubric
    ├── BlobRangeError           a byte range lies outside a stored blob (HTTP 416)
    └── FirmwareError            a firmware image, version or manifest is not acceptable
        └── ManifestRefusedError     a device would refuse this image, with the reason
"""

from __future__ import annotations


class TetherError(Exception):
    """Base of every error tether raises on purpose."""


class SettingsError(TetherError):
    """A configuration key is missing or has the wrong form."""


class EngineError(TetherError):
    """An engine failed, or its binary or library is missing."""


class MissingExtraError(EngineError):
    """An optional dependency is not installed."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"the Python module {module!r} is not installed; "
            f"install it with: pip install 'tether[{extra}]'"
        )
        self.module = module
        self.extra = extra


class MigrationRequiredError(EngineError):
    """A PostgreSQL database has no tether schema yet, or an older one: run ``tether migrate``.

    ``store`` names the store ("entity store", "telemetry store"); ``found`` is the
    schema revision the database is at (None when it has none) and ``needed`` the
    one this tether runs on.
    """

    def __init__(self, store: str, where: str, found: str | None, needed: str) -> None:
        at = "has no tether schema yet" if found is None else f"is at schema revision {found}"
        super().__init__(
            f"the {store} at {where} {at}; this tether needs revision {needed}: "
            "run `tether migrate` (it upgrades the entity and telemetry databases)"
        )
        self.store = store
        self.found = found
        self.needed = needed


class CustodyError(TetherError):
    """A key could not be created, found or used by its custodian."""


class IdentityError(TetherError):
    """A certificate, CSR or serial is not acceptable."""


class InvalidSerialError(IdentityError):
    """A device serial does not have the contract's form."""


class CSRRejectedError(IdentityError):
    """A certificate signing request was refused."""


class CertificateRejectedError(IdentityError):
    """A device certificate failed verification.

    ``code`` is the reject code of the wire contract (section 8):
    ``untrusted_cert``, ``cert_expired``, ``cert_revoked`` or ``unknown_device``.
    """

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class RecordRejectedError(TetherError):
    """A record was refused; ``code`` is a reject code of the wire contract (section 8).

    ``seq`` is the record's sequence number when it was read before the refusal.
    """

    def __init__(self, code: str, detail: str, seq: int | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.seq = seq


class ClassPackError(TetherError):
    """A device class pack is malformed; the message names the file and the key."""


class AuthenticationError(TetherError):
    """A bearer token is missing, unknown or revoked (HTTP 401)."""


class PermissionDeniedError(TetherError):
    """The caller is authenticated but may not act on this thing (HTTP 403)."""


class NotFoundError(TetherError):
    """A tenant, CA, key or device does not exist."""


class ConflictError(TetherError):
    """The thing already exists, or is in a state that forbids the operation."""


class MaskingError(TetherError):
    """The masking pipeline refused its input, its rubric or its own output."""


class BlobRangeError(TetherError):
    """A byte range asked of the blob store lies outside the blob (HTTP 416)."""

    def __init__(self, key: str, start: int, end: int | None, size: int) -> None:
        shown = f"{start}-" if end is None else f"{start}-{end - 1}"
        super().__init__(
            f"bytes {shown} are outside blob {key!r} of {size} bytes; "
            f"ask for a range within 0-{max(size - 1, 0)}"
        )
        self.key = key
        self.size = size


class FirmwareError(TetherError):
    """A firmware image, version string, hardware list or manifest is not acceptable."""


class ManifestRefusedError(FirmwareError):
    """A device would refuse this image; ``reason`` is one of ``tether.firmware.verify.Refusal``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
