"""Synthetic tool telemetry with a realistic PII surface, at any size.

Connected drills, impact drivers and torque wrenches report readings tagged with
the operator who used them and the job site they were on: operator e-mail, name,
id and birth date, job-site address and GPS, pay rate, and free-text notes that
sometimes carry a name, a phone number, an e-mail or an address. Deterministic for
a given seed. The matching rubric ships as ``rubrics/tool-telemetry.yaml``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

FIRST = [
    "Maria",
    "James",
    "Aisha",
    "Wei",
    "Carlos",
    "Olga",
    "Tom",
    "Priya",
    "Kwame",
    "Sofia",
    "Liam",
    "Fatima",
    "Noah",
    "Elena",
    "Omar",
    "Grace",
    "Mateo",
    "Hana",
    "Lucas",
    "Zara",
    "Ethan",
    "Ines",
    "Diego",
    "Yuki",
    "Samuel",
    "Chloe",
    "Ivan",
    "Amara",
    "Jonas",
    "Leila",
]
LAST = [
    "Garcia",
    "Smith",
    "Okafor",
    "Chen",
    "Rossi",
    "Novak",
    "Brennan",
    "Patel",
    "Mensah",
    "Silva",
    "Murphy",
    "Haddad",
    "Walker",
    "Petrova",
    "Farouk",
    "Kim",
    "Lopez",
    "Sato",
    "Becker",
    "Ali",
    "Johnson",
    "Moreau",
    "Alvarez",
    "Tanaka",
    "Clarke",
    "Dubois",
    "Ivanova",
    "Nwosu",
    "Larsen",
    "Rahman",
]
STREETS = [
    "Oak Street",
    "Elm Road",
    "Maple Avenue",
    "Harbor Way",
    "Industrial Parkway",
    "Mill Lane",
    "Quarry Road",
    "Station Drive",
    "Foundry Street",
    "Cedar Court",
    "Bridge Boulevard",
    "Depot Place",
]
CITIES = (
    ("Dayton", "OH", 39.7589, -84.1916),
    ("Springfield", "IL", 39.7817, -89.6501),
    ("Tacoma", "WA", 47.2529, -122.4443),
    ("Austin", "TX", 30.2672, -97.7431),
    ("Raleigh", "NC", 35.7796, -78.6382),
    ("Boise", "ID", 43.6150, -116.2023),
    ("Albany", "NY", 42.6526, -73.7562),
    ("Denver", "CO", 39.7392, -104.9903),
    ("Madison", "WI", 43.0731, -89.4012),
    ("Tucson", "AZ", 32.2226, -110.9747),
)
AREA_CODES = ("212", "312", "415", "617", "713", "206", "303", "404", "608", "919")
MAIL_DOMAINS = ("example.com", "example.org", "example.net", "acme-build.com")
MODELS = ("DRL-20V", "IMP-18V", "TWR-TQ50", "HMR-36V")
ERRORS = ("E-101 overcurrent", "E-204 thermal", "E-310 clutch", "E-412 low battery")
CLEAN_NOTES = (
    "Battery swapped, no issues.",
    "Clutch slipping under load; sent for service.",
    "Torque readings drifted high after lunch, recalibrated.",
    "Left in the site office overnight.",
    "Firmware update applied before shift.",
    "Trigger sticky in the cold, warmed up fine.",
)
PII_NOTES = (
    "{name} reported the trigger sticking, call back on {phone}.",
    "Delivered to {address} for {name}.",
    "Email {email} when the replacement arrives.",
    "Site contact {name}, {phone}.",
    "Operator {name} asked to move the tool to {address}.",
)


def generate(rows: int, seed: int = 7, start: datetime | None = None) -> pl.DataFrame:
    """``rows`` rows of synthetic tool telemetry."""
    if rows < 1:
        raise ValueError("rows must be at least 1")
    rng = np.random.default_rng(seed)
    start = start or datetime(2026, 3, 1, tzinfo=UTC)
    n_ops = max(20, rows // 400)
    n_tools = max(30, rows // 200)
    n_sites = max(10, rows // 1000)

    first = rng.choice(FIRST, n_ops)
    last = rng.choice(LAST, n_ops)
    names = [f"{f} {la}" for f, la in zip(first, last, strict=True)]
    emails = [
        f"{f.lower()}.{la.lower()}{i}@{MAIL_DOMAINS[i % len(MAIL_DOMAINS)]}"
        for i, (f, la) in enumerate(zip(first, last, strict=True))
    ]
    phones = [
        f"({AREA_CODES[i % len(AREA_CODES)]}) {rng.integers(200, 999)}-{rng.integers(1000, 9999)}"
        for i in range(n_ops)
    ]
    birth = [
        f"{rng.integers(1960, 2004)}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}"
        for _ in range(n_ops)
    ]
    rate = np.round(rng.normal(38.0, 9.0, n_ops).clip(16, 90), 2)
    city_of_site = rng.integers(0, len(CITIES), n_sites)
    site_addr = [
        f"{rng.integers(1, 9999)} {STREETS[rng.integers(0, len(STREETS))]}, "
        f"{CITIES[c][0]}, {CITIES[c][1]} {rng.integers(10000, 99999)}"
        for c in city_of_site
    ]
    site_lat = np.array([CITIES[c][2] for c in city_of_site]) + rng.normal(0, 0.05, n_sites)
    site_lon = np.array([CITIES[c][3] for c in city_of_site]) + rng.normal(0, 0.05, n_sites)

    op = rng.integers(0, n_ops, rows)
    tool = rng.integers(0, n_tools, rows)
    site = rng.integers(0, n_sites, rows)
    seconds = rng.integers(0, 60 * 86400, rows)
    has_note = rng.random(rows) < 0.3
    pii_note = rng.random(rows) < 0.4
    clean_pick = rng.integers(0, len(CLEAN_NOTES), rows)
    pii_pick = rng.integers(0, len(PII_NOTES), rows)
    notes: list[str | None] = []
    for i in range(rows):
        if not has_note[i]:
            notes.append(None)
        elif pii_note[i]:
            o = op[i]
            notes.append(
                PII_NOTES[pii_pick[i]].format(
                    name=names[o], phone=phones[o], email=emails[o], address=site_addr[site[i]]
                )
            )
        else:
            notes.append(CLEAN_NOTES[clean_pick[i]])
    err_pick = rng.integers(0, len(ERRORS), rows)
    errors = [
        ERRORS[e] if r < 0.08 else None for e, r in zip(err_pick, rng.random(rows), strict=True)
    ]

    return pl.DataFrame(
        {
            "event_id": [f"evt-{seed:04d}-{i:09d}" for i in range(rows)],
            "recorded_at": [start + timedelta(seconds=int(s)) for s in seconds],
            "tool_serial": [f"PT-{seed % 100:02d}{t:07d}" for t in tool],
            "tool_mac": [_mac(seed, t) for t in tool],
            "tool_model": [MODELS[t % len(MODELS)] for t in tool],
            "operator_id": [f"EMP-{o:06d}" for o in op],
            "operator_email": [emails[o] for o in op],
            "operator_name": [names[o] for o in op],
            "operator_birth_date": [birth[o] for o in op],
            "operator_hourly_rate": rate[op],
            "job_site_address": [site_addr[s] for s in site],
            "gps_lat": np.round(site_lat[site] + rng.normal(0, 0.002, rows), 6),
            "gps_lon": np.round(site_lon[site] + rng.normal(0, 0.002, rows), 6),
            "battery_pct": rng.integers(3, 101, rows),
            "torque_nm": np.round(rng.gamma(4.0, 9.0, rows), 2),
            "usage_minutes": np.round(rng.exponential(22.0, rows), 1),
            "error_code": errors,
            "notes": notes,
        },
        schema_overrides={"recorded_at": pl.Datetime("us", "UTC"), "error_code": pl.String},
    )


def _mac(seed: int, tool: int) -> str:
    raw = (0x02AA00000000 | ((seed & 0xFF) << 24) | int(tool)).to_bytes(6, "big")
    return ":".join(f"{b:02x}" for b in raw)


def write(frame: pl.DataFrame, path: Path) -> None:
    """Write as CSV (timestamps as ISO 8601 with Z) or Parquet, by the file's suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        frame.with_columns(pl.col("recorded_at").dt.strftime("%Y-%m-%dT%H:%M:%SZ")).write_csv(path)
    elif path.suffix.lower() == ".parquet":
        frame.write_parquet(path)
    else:
        raise ValueError(f"{path}: write .csv or .parquet")
