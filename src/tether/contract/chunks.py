"""The firmware chunk of the wire contract (section 10), shared by phone and device.

An image crosses a BLE link through a phone as numbered chunks::

    chunk = index (uint32) ‖ payload (20-240 bytes) ‖ CRC-16/CCITT-FALSE(index ‖ payload) (uint16)

Both integers are little-endian, like every other multi-byte field on the BLE
link (section 4). A transfer cuts its image at one payload size chosen when it
starts: chunk ``i`` carries bytes ``i·P`` up to ``(i+1)·P`` of the image, and
only the last chunk may be shorter than ``P`` (and than 20 bytes), since it
carries what remains.

The CRC is the cheap per-packet check that lets the device nack a damaged chunk
at once; the SHA-256 of the whole image in the signed manifest is the real one.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

from tether.errors import TetherError

MIN_PAYLOAD = 20  # the default ATT MTU of 23 less its 3-byte header
MAX_PAYLOAD = 240  # what the LE Data Length Extension leaves room for
INDEX_MAX = 2**32 - 1

_INDEX = struct.Struct("<I")
_CRC = struct.Struct("<H")
OVERHEAD = _INDEX.size + _CRC.size  # 6 bytes around every payload


class ChunkError(TetherError):
    """A chunk cannot be read or made; the device nacks it."""

    reason = "malformed"


class ShortChunkError(ChunkError):
    """Fewer bytes than an index, the smallest payload allowed and a CRC."""

    reason = "short"


class OversizeChunkError(ChunkError):
    """A payload longer than 240 bytes."""

    reason = "oversize"


class BadCrcError(ChunkError):
    """The CRC does not match the index and payload: the chunk was damaged on the way."""

    reason = "crc"


def crc16_ccitt_false(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE: polynomial 0x1021, initial 0xFFFF, no reflection, no final XOR.

    ``crc`` continues a CRC over earlier bytes. The check value over
    ``b"123456789"`` is 0x29B1.
    """
    # binascii's CRC-CCITT is this polynomial, MSB first and unreflected; only the
    # initial value differs between the CRC-16 variants, and we pass 0xFFFF.
    return binascii.crc_hqx(data, crc)


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    payload: bytes


def encode_chunk(index: int, payload: bytes, *, min_payload: int = MIN_PAYLOAD) -> bytes:
    """The chunk's bytes. ``min_payload=1`` lets an image's last, shorter chunk through."""
    if not 0 <= index <= INDEX_MAX:
        raise ChunkError(f"chunk index {index} does not fit a uint32")
    if len(payload) > MAX_PAYLOAD:
        raise OversizeChunkError(
            f"a chunk carries at most {MAX_PAYLOAD} payload bytes, not {len(payload)}"
        )
    if len(payload) < max(1, min_payload):
        raise ShortChunkError(
            f"a chunk carries at least {max(1, min_payload)} payload bytes, not {len(payload)}"
        )
    head = _INDEX.pack(index) + payload
    return head + _CRC.pack(crc16_ccitt_false(head))


def decode_chunk(data: bytes, *, min_payload: int = MIN_PAYLOAD) -> Chunk:
    """The chunk in ``data``; ShortChunkError, OversizeChunkError or BadCrcError if not one.

    A receiver that expects an image's last chunk passes ``min_payload=1``.
    """
    size = len(data) - OVERHEAD
    if size < max(1, min_payload):
        raise ShortChunkError(
            f"{len(data)} bytes is too short for a chunk of at least "
            f"{max(1, min_payload)} payload bytes"
        )
    if size > MAX_PAYLOAD:
        raise OversizeChunkError(f"a payload of {size} bytes is over the {MAX_PAYLOAD} allowed")
    body = bytes(data[:-2])
    (sent,) = _CRC.unpack_from(data, len(data) - 2)
    found = crc16_ccitt_false(body)
    if sent != found:
        raise BadCrcError(f"the chunk's CRC is {sent:#06x}, its bytes give {found:#06x}")
    (index,) = _INDEX.unpack_from(body)
    return Chunk(index, body[_INDEX.size :])


def chunk_count(size: int, payload: int) -> int:
    """How many chunks an image of ``size`` bytes takes at ``payload`` bytes a chunk."""
    check_payload(payload)
    return -(-size // payload)


def chunk_span(index: int, size: int, payload: int) -> tuple[int, int]:
    """The byte range ``[start, end)`` of the image that chunk ``index`` carries."""
    start = index * payload
    if index < 0 or start >= size:
        raise ChunkError(f"an image of {size} bytes has no chunk {index} at {payload} bytes")
    return start, min(size, start + payload)


def check_payload(payload: int) -> int:
    if not MIN_PAYLOAD <= payload <= MAX_PAYLOAD:
        raise ChunkError(
            f"a transfer's payload size is {MIN_PAYLOAD}-{MAX_PAYLOAD} bytes, not {payload}"
        )
    return payload


def cut_image(image: bytes, payload: int) -> list[Chunk]:
    """The chunks that carry ``image`` at ``payload`` bytes each, the last one shorter."""
    check_payload(payload)
    if chunk_count(len(image), payload) - 1 > INDEX_MAX:
        raise ChunkError("the image needs more chunks than a uint32 index can number")
    return [
        Chunk(i, image[at : at + payload]) for i, at in enumerate(range(0, len(image), payload))
    ]


def encode_image(image: bytes, payload: int) -> list[bytes]:
    """Every chunk of ``image`` as bytes on the wire."""
    return [encode_chunk(c.index, c.payload, min_payload=1) for c in cut_image(image, payload)]
