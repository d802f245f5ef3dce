"""Key custody in a PKCS#11 token (SoftHSM2 in tests, a hardware module in production).

Keys are generated inside the token as sensitive and non-extractable, so they can
sign but never be read out. SoftHSM2 has no ``CKM_ECDSA_SHA256``: the digest is
computed here and the token signs it with ``CKM_ECDSA``, which returns raw ``r || s``.

The custody URL follows RFC 7512:
``pkcs11:token=<label>?module-path=<library>&pin-value=<pin>``; the PIN may come
from ``TETHER_PKCS11_PIN`` instead of the URL.
"""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import unquote

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tether.errors import (
    ConflictError,
    CustodyError,
    EngineError,
    MissingExtraError,
    NotFoundError,
    SettingsError,
)
from tether.keys.base import KeyCustody, SigningKey
from tether.keys.keyfile import check_label

try:
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
    from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

    HAVE_PKCS11 = True
except ImportError:  # pragma: no cover - exercised only without the extra
    HAVE_PKCS11 = False


def parse_pkcs11_url(url: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Split an RFC 7512 URI into its attributes; names the missing one on error."""
    if not url.startswith("pkcs11:"):
        raise SettingsError(f"{url!r} is not a PKCS#11 URI (it must start with 'pkcs11:')")
    path, _, query = url[len("pkcs11:") :].partition("?")
    attrs: dict[str, str] = {}
    for part in [p for p in path.split(";") if p] + [q for q in query.split("&") if q]:
        name, sep, value = part.partition("=")
        if not sep:
            raise SettingsError(f"PKCS#11 URI attribute {part!r} has no '=' in {url!r}")
        attrs[name] = unquote(value)
    env = os.environ if environ is None else environ
    attrs.setdefault("pin-value", env.get("TETHER_PKCS11_PIN", ""))
    for required in ("token", "module-path", "pin-value"):
        if not attrs.get(required):
            raise SettingsError(
                f"PKCS#11 URI {url!r} lacks {required!r}; the form is "
                "pkcs11:token=<label>?module-path=<library>&pin-value=<pin> "
                "(or set TETHER_PKCS11_PIN)"
            )
    return attrs


class Pkcs11SigningKey(SigningKey):
    def __init__(self, custody: Pkcs11KeyCustody, label: str, private: Any, public: Any) -> None:
        self.label = label
        self._custody = custody
        self._private = private
        self._public = _load_public(public)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    def sign_digest(self, digest: bytes) -> bytes:
        if len(digest) != 32:
            raise CustodyError(f"a SHA-256 digest is 32 bytes, got {len(digest)}")
        with self._custody.lock:
            try:
                return bytes(self._private.sign(digest, mechanism=Mechanism.ECDSA))
            except pkcs11.PKCS11Error as exc:
                raise CustodyError(
                    f"the token refused to sign with {self.label!r}: {exc!r}"
                ) from exc


def _load_public(public: Any) -> ec.EllipticCurvePublicKey:
    key = serialization.load_der_public_key(encode_ec_public_key(public))
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CustodyError("the token's public key is not an EC key")
    return key


class _TokenLogin:
    """The one logged-in session this process holds on a token, shared by its custodians.

    PKCS#11 login state belongs to the application, not to a session: a second
    ``C_Login`` fails with ``CKR_USER_ALREADY_LOGGED_IN``, and a logout (python-pkcs11
    logs out when a logged-in session is closed) logs every session out. Custodians of
    the same token (the CA keys and the firmware key may well share one) therefore
    share one session and its lock; the last to close it logs out.
    """

    def __init__(self, session: Any, pin: str) -> None:
        self.session = session
        self.pin = pin
        self.lock = threading.Lock()
        self.users = 0


_logins: dict[tuple[str, str], _TokenLogin] = {}
_logins_lock = threading.Lock()


def _open_session(attrs: dict[str, str]) -> Any:
    try:
        lib = pkcs11.lib(attrs["module-path"])
        token = lib.get_token(token_label=attrs["token"])
        try:
            return token.open(user_pin=attrs["pin-value"], rw=True)
        except pkcs11.UserAlreadyLoggedIn:
            # Logged in by someone else in this process; the login is shared.
            return token.open(rw=True)
    except pkcs11.NoSuchToken:
        raise EngineError(
            f"no PKCS#11 token labelled {attrs['token']!r} in {attrs['module-path']}; "
            "create it first (for SoftHSM2: softhsm2-util --init-token --free "
            f"--label {attrs['token']})"
        ) from None
    except pkcs11.PinIncorrect:
        raise EngineError(f"wrong PIN for PKCS#11 token {attrs['token']!r}") from None
    except (OSError, RuntimeError, pkcs11.PKCS11Error) as exc:
        raise EngineError(f"cannot open PKCS#11 module {attrs['module-path']!r}: {exc!r}") from exc


class Pkcs11KeyCustody(KeyCustody):
    """Labelled P-256 keys generated and kept inside a PKCS#11 token."""

    def __init__(self, url: str) -> None:
        if not HAVE_PKCS11:
            raise MissingExtraError("pkcs11", "pkcs11")
        attrs = parse_pkcs11_url(url)
        self._token_key = (attrs["module-path"], attrs["token"])
        with _logins_lock:
            login = _logins.get(self._token_key)
            if login is None:
                login = _TokenLogin(_open_session(attrs), attrs["pin-value"])
                _logins[self._token_key] = login
            elif login.pin != attrs["pin-value"]:
                raise EngineError(
                    f"wrong PIN for PKCS#11 token {attrs['token']!r} (this process holds it "
                    "open with another)"
                )
            login.users += 1
        self._login: _TokenLogin | None = login
        self.lock = login.lock
        self._session = login.session

    def _find(self, label: str, object_class: Any) -> Any | None:
        with self.lock:
            found = list(
                self._session.get_objects({Attribute.CLASS: object_class, Attribute.LABEL: label})
            )
        if len(found) > 1:
            raise CustodyError(f"the token holds {len(found)} keys labelled {label!r}")
        return found[0] if found else None

    def create(self, label: str) -> SigningKey:
        check_label(label)
        if self.exists(label):
            raise ConflictError(f"a key labelled {label!r} already exists in the token")
        with self.lock:
            params = self._session.create_domain_parameters(
                KeyType.EC,
                {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
                local=True,
            )
            public, private = params.generate_keypair(
                store=True,
                label=label,
                private_template={
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.SIGN: True,
                },
            )
        return Pkcs11SigningKey(self, label, private, public)

    def get(self, label: str) -> SigningKey:
        private = self._find(label, ObjectClass.PRIVATE_KEY)
        public = self._find(label, ObjectClass.PUBLIC_KEY)
        if private is None or public is None:
            raise NotFoundError(f"no key pair labelled {label!r} in the PKCS#11 token")
        return Pkcs11SigningKey(self, label, private, public)

    def exists(self, label: str) -> bool:
        return self._find(label, ObjectClass.PRIVATE_KEY) is not None

    def labels(self) -> list[str]:
        with self.lock:
            objs = list(self._session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
        return sorted(str(o[Attribute.LABEL]) for o in objs)

    def close(self) -> None:
        login, self._login = self._login, None
        if login is None:
            return
        with _logins_lock:
            login.users -= 1
            if login.users > 0:
                return
            del _logins[self._token_key]
        with login.lock:
            login.session.close()
