"""Build X.509 objects signed by a custodian's key.

``cryptography`` builders only sign with keys they hold. A custodian (a key file
or a PKCS#11 token) signs digests, so the builders sign with a throwaway key of
the same type and the signature is then replaced: the to-be-signed bytes are
hashed, signed by the custodian, and the DER structure is reassembled. The
signature algorithm inside the to-be-signed bytes (ecdsa-with-SHA256) does not
depend on the key, so the result is exactly what the custodian's key would have
produced directly.
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tether.keys.base import SigningKey

# AlgorithmIdentifier { ecdsa-with-SHA256 } in DER.
_ECDSA_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")
_THROWAWAY = ec.generate_private_key(ec.SECP256R1())


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(body)) + body


def signed_der(tbs: bytes, key: SigningKey) -> bytes:
    """Wrap to-be-signed bytes with the custodian's ECDSA-SHA256 signature."""
    raw = key.sign_digest(hashlib.sha256(tbs).digest())
    sig = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    return _tlv(0x30, tbs + _ECDSA_SHA256 + _tlv(0x03, b"\x00" + sig))


def sign_certificate(builder: x509.CertificateBuilder, key: SigningKey) -> x509.Certificate:
    draft = builder.sign(_THROWAWAY, hashes.SHA256())
    return x509.load_der_x509_certificate(signed_der(draft.tbs_certificate_bytes, key))


def sign_crl(
    builder: x509.CertificateRevocationListBuilder, key: SigningKey
) -> x509.CertificateRevocationList:
    draft = builder.sign(_THROWAWAY, hashes.SHA256())
    return x509.load_der_x509_crl(signed_der(draft.tbs_certlist_bytes, key))
