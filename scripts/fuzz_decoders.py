"""Fuzz every decoder that reads device bytes; only typed rejections may escape.

    .venv/bin/python scripts/fuzz_decoders.py [--count 1000000] [--seed N]

Inputs are a mix of random bytes, valid frames of every class with bytes
mutated, and JSON payloads with fields mutated. Any exception other than
RecordRejectedError is printed with the input that caused it, and the script
exits 1.
"""

from __future__ import annotations

import argparse
import json
import random
import struct
import sys

from rich.progress import Progress

from tether.classes import load_catalog
from tether.contract.records import decode_legacy, decode_payload, split_record
from tether.errors import RecordRejectedError


def valid_frames() -> list[bytes]:
    return [
        bytes([0x11, 0b111])
        + struct.pack("<IIH", 9, 1_700_000_000, 120)
        + bytes([30] * 4)
        + bytes([2, 80])
        + struct.pack("<H", 7),
        bytes([0x21, 5])
        + struct.pack("<II", 3, 1_700_000_000)
        + bytes([1, 2, 3, 1, 2, 2, 0, 0, 0, 0]),
        bytes([0x31, 0]) + struct.pack("<I", 4) + bytes(range(14)),
    ]


def json_payloads() -> list[bytes]:
    base = {
        "device": "X-1",
        "seq": 1,
        "ts": 1_700_000_000_000,
        "type": "hello",
        "v": 1,
        "body": {"fw": "1.0.0", "capabilities": []},
    }
    legacy = {"event_id": "e1", "device_id": "X-1", "ts": 1, "battery_pct": 50}
    return [json.dumps(base).encode(), json.dumps(legacy).encode()]


def mutate(rng: random.Random, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        if choice < 0.6 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif choice < 0.8 and data:
            del data[rng.randrange(len(data))]
        else:
            data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
    return bytes(data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20261123)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    runtimes = list(load_catalog())
    seeds = valid_frames() + json_payloads()
    rejected = 0
    with Progress() as progress:
        task = progress.add_task("fuzzing decoders", total=args.count)
        for i in range(args.count):
            if i % 3 == 0:
                data = rng.randbytes(rng.randint(0, 40))
            else:
                data = mutate(rng, rng.choice(seeds))
            runtime = runtimes[i % len(runtimes)]
            try:
                payload, _ = split_record(data, signed=False)
                if runtime.pack.legacy is not None and i % 2:
                    decode_legacy(payload, "X-1", runtime)
                else:
                    decode_payload(payload, "X-1", runtime)
            except RecordRejectedError:
                rejected += 1
            except Exception as exc:
                print(f"input {data!r} for {runtime.name} raised {exc!r}", file=sys.stderr)
                return 1
            if i % 10_000 == 0:
                progress.update(task, completed=i)
        progress.update(task, completed=args.count)
    print(
        f"{args.count:,} inputs: {rejected:,} rejected with a typed code, "
        f"{args.count - rejected:,} decoded, nothing else escaped"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
