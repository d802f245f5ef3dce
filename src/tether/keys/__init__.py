"""Key custody: where CA, service and firmware-signing keys live and sign."""

from tether.keys.base import KeyCustody, SigningKey
from tether.keys.registry import open_custody

__all__ = ["KeyCustody", "SigningKey", "open_custody"]
