"""Pick a key custodian by URL: ``file:<dir>`` or ``pkcs11:...``."""

from __future__ import annotations

from pathlib import Path

from tether.errors import SettingsError
from tether.keys.base import KeyCustody


def open_custody(url: str) -> KeyCustody:
    """Open the custodian a URL names; SettingsError for an unknown scheme."""
    if url.startswith("file:"):
        from tether.keys.keyfile import FileKeyCustody

        return FileKeyCustody(Path(url[len("file:") :]))
    if url.startswith("pkcs11:"):
        from tether.keys.pkcs11 import Pkcs11KeyCustody

        return Pkcs11KeyCustody(url)
    raise SettingsError(
        f"key custody URL {url!r} has an unknown scheme; use file:<directory> or "
        "pkcs11:token=<label>?module-path=<library>&pin-value=<pin>"
    )
