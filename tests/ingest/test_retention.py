"""The retention role: raw records and stored events past their windows go, the rest stays."""

from __future__ import annotations

import time
from pathlib import Path

from tests.identity.conftest import Clock
from tests.ingest.helpers import wait_for
from tether.gate.submission import MQTT, Submission
from tether.platform import Platform
from tether.runtime import Runtime
from tether.settings import load_settings
from tether.store.telemetry import TelemetryEvent

DAY = 86_400


def event(seq: int, ts_ms: int) -> TelemetryEvent:
    return TelemetryEvent(
        tenant="acme",
        serial="RC-1",
        device_class="retail-cart",
        site=None,
        dedupe_key=str(seq),
        seq=seq,
        type="health",
        v=1,
        device_ts=ts_ms,
        ts=ts_ms,
        arrival=ts_ms,
        clock_corrected=False,
        fw=None,
    )


def test_the_retention_role_trims_raw_records_and_stored_events(tmp_path: Path) -> None:
    settings = load_settings(
        {"data_dir": str(tmp_path), "raw_retention_days": 2, "telemetry_retention_days": 10},
        config_file=tmp_path / "none.toml",
        environ={},
    )
    # Raw append times are the machine's; the platform's clock runs three days ahead.
    now = time.time() + 3 * DAY
    p = Platform.open(settings, clock=Clock(now))
    p.stream("raw").append([Submission("RC-1", b"x", MQTT, 0).entry()])
    now_ms = int(now * 1000)
    p.telemetry.write([event(1, now_ms - 11 * DAY * 1000), event(2, now_ms - 9 * DAY * 1000)])
    rt = Runtime(p, mqtt=False, roles=["retention"])
    rt.start()
    try:
        wait_for(lambda: p.telemetry.count() == 1)
        assert p.telemetry.seqs("RC-1") == [2]
        assert p.stream("raw").read(0, 10) == []
    finally:
        rt.stop()
        p.close()
