"""A key ring kept in a PKCS#11 token (SoftHSM2 in tests, an HSM in production).

The key ring document (the same YAML as a key file) is one private data object,
readable only after logging in to the token. The spec names the module, the
token, and the environment variable holding the user PIN::

    pkcs11:module=/usr/lib/softhsm/libsofthsm2.so;token=mask;pin-env=MASK_PIN

An optional ``label=`` picks the object (default ``tether-mask-keyring``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from tether.errors import MissingExtraError
from tether.masking.errors import KeyMaterialError
from tether.masking.keystore import dump_keyring, parse_keyring
from tether.masking.salts import KeyRing

DEFAULT_LABEL = "tether-mask-keyring"


def _parse_spec(spec: str, environ: Mapping[str, str]) -> tuple[str, str, str, str]:
    fields: dict[str, str] = {}
    for part in spec.removeprefix("pkcs11:").split(";"):
        key, sep, value = part.partition("=")
        if not sep:
            raise KeyMaterialError(f"--keys {spec!r}: expected key=value pairs after pkcs11:")
        fields[key.strip()] = value.strip()
    for required in ("module", "token", "pin-env"):
        if required not in fields:
            raise KeyMaterialError(
                f"--keys {spec!r}: missing {required}=; expected "
                "pkcs11:module=PATH;token=LABEL;pin-env=VARIABLE"
            )
    var = fields["pin-env"]
    if var not in environ:
        raise KeyMaterialError(f"environment variable {var} (the token PIN) is not set")
    return fields["module"], fields["token"], environ[var], fields.get("label", DEFAULT_LABEL)


def _session(module: str, token_label: str, pin: str) -> Any:
    try:
        import pkcs11
    except ImportError as exc:
        raise MissingExtraError("pkcs11", "pkcs11") from exc
    try:
        token = pkcs11.lib(module).get_token(token_label=token_label)
        try:
            return token.open(user_pin=pin, rw=True)
        except pkcs11.UserAlreadyLoggedIn:
            # Another part of this process (key custody) holds the login; it is shared.
            return token.open(rw=True)
    except (pkcs11.PKCS11Error, RuntimeError, OSError) as exc:
        raise KeyMaterialError(
            f"cannot open PKCS#11 token {token_label!r} with {module}: {type(exc).__name__}"
        ) from exc


def open_pkcs11_keyring(spec: str, environ: Mapping[str, str] | None = None) -> KeyRing:
    """Read the key ring object from the token."""
    from pkcs11 import Attribute, ObjectClass

    module, token, pin, label = _parse_spec(spec, os.environ if environ is None else environ)
    with _session(module, token, pin) as session:
        objs = list(
            session.get_objects({Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: label})
        )
        if not objs:
            raise KeyMaterialError(f"no data object labelled {label!r} on token {token!r}")
        value = bytes(objs[0][Attribute.VALUE])
    return parse_keyring(value.decode(), origin=f"pkcs11 token {token} object {label}")


def store_pkcs11_keyring(
    spec: str, ring: KeyRing, environ: Mapping[str, str] | None = None
) -> None:
    """Write (or replace) the key ring object on the token."""
    from pkcs11 import Attribute, ObjectClass

    module, token, pin, label = _parse_spec(spec, os.environ if environ is None else environ)
    with _session(module, token, pin) as session:
        for old in session.get_objects({Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: label}):
            old.destroy()
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.DATA,
                Attribute.LABEL: label,
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.MODIFIABLE: True,
                Attribute.VALUE: dump_keyring(ring).encode(),
            }
        )
