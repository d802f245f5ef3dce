"""The firmware chunk of the contract: CRC-16/CCITT-FALSE, the codec and its refusals."""

from __future__ import annotations

import pytest

from tether.contract.chunks import (
    MAX_PAYLOAD,
    BadCrcError,
    Chunk,
    ChunkError,
    OversizeChunkError,
    ShortChunkError,
    chunk_count,
    chunk_span,
    crc16_ccitt_false,
    cut_image,
    decode_chunk,
    encode_chunk,
    encode_image,
)


def bitwise_crc(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def test_crc_check_value() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1
    assert crc16_ccitt_false(b"") == 0xFFFF


@pytest.mark.parametrize("data", [b"\x00", b"\xff" * 7, bytes(range(256)), b"tether"])
def test_crc_matches_the_bitwise_definition(data: bytes) -> None:
    assert crc16_ccitt_false(data) == bitwise_crc(data)
    assert crc16_ccitt_false(data[1:], crc16_ccitt_false(data[:1])) == bitwise_crc(data)


def test_round_trip_and_layout() -> None:
    payload = bytes(range(20))
    data = encode_chunk(0x01020304, payload)
    assert len(data) == 4 + 20 + 2
    assert data[:4] == b"\x04\x03\x02\x01"  # little-endian index
    crc = crc16_ccitt_false(data[:-2])
    assert data[-2:] == crc.to_bytes(2, "little")
    assert decode_chunk(data) == Chunk(0x01020304, payload)


def test_a_flipped_bit_is_a_bad_crc() -> None:
    data = bytearray(encode_chunk(7, b"x" * 40))
    data[10] ^= 0x10
    with pytest.raises(BadCrcError) as caught:
        decode_chunk(bytes(data))
    assert caught.value.reason == "crc"
    data = bytearray(encode_chunk(7, b"x" * 40))
    data[0] ^= 1  # the index is covered too
    with pytest.raises(BadCrcError):
        decode_chunk(bytes(data))


def test_short_and_oversize_chunks() -> None:
    with pytest.raises(ShortChunkError):
        decode_chunk(b"\x00\x00\x00")
    with pytest.raises(ShortChunkError):
        decode_chunk(encode_chunk(3, b"abc", min_payload=1))  # 3 bytes, not a last chunk
    assert decode_chunk(encode_chunk(3, b"abc", min_payload=1), min_payload=1).payload == b"abc"
    with pytest.raises(OversizeChunkError):
        encode_chunk(0, b"x" * (MAX_PAYLOAD + 1))
    oversize = encode_chunk(0, b"x" * MAX_PAYLOAD)[:-2] + b"x"
    oversize += crc16_ccitt_false(oversize).to_bytes(2, "little")
    with pytest.raises(OversizeChunkError):
        decode_chunk(oversize)
    with pytest.raises(ShortChunkError):
        encode_chunk(0, b"x" * 19)
    with pytest.raises(ChunkError):
        encode_chunk(2**32, b"x" * 20)


def test_cutting_an_image() -> None:
    image = bytes(i % 251 for i in range(1005))
    chunks = cut_image(image, 20)
    assert len(chunks) == chunk_count(len(image), 20) == 51
    assert [c.index for c in chunks] == list(range(51))
    assert all(len(c.payload) == 20 for c in chunks[:-1])
    assert len(chunks[-1].payload) == 5
    assert b"".join(c.payload for c in chunks) == image
    assert chunk_span(50, len(image), 20) == (1000, 1005)
    with pytest.raises(ChunkError):
        chunk_span(51, len(image), 20)
    wire = encode_image(image, 240)
    assert b"".join(decode_chunk(w, min_payload=1).payload for w in wire) == image
    with pytest.raises(ChunkError):
        cut_image(image, 19)
    with pytest.raises(ChunkError):
        cut_image(image, 241)
