"""What a run prints: what the world did, what the platform should hold, and what it holds."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from rich.console import Console
from rich.table import Table

from tether.sim.run import RunReport

CLASSES = ("oral-care-brush", "retail-cart", "power-tool")


def _lines(c: Counter[str], devices: dict[str, int]) -> list[str]:
    out: list[str] = []
    if devices.get("oral-care-brush"):
        out += [
            f"brushes: {c['brush.sessions']:,} sessions ({c['history.brush.sessions']:,} more "
            f"before the run), {c['brush.battery_low']:,} battery-low and "
            f"{c['brush.head_attached']:,} head events, {c['brush.battery_died']:,} batteries "
            f"run flat, {c['brush.clock_resets']:,} clocks back to 1970, "
            f"{c['brush.ring_overwrites'] + c['history.brush.ring_overwrites']:,} records "
            "overwritten in full rings",
            f"phones: {c['phone.connections']:,} connections with the app open in range "
            f"({c['phone.unboxings']:,} unboxings), {c['phone.paired']:,} pairings by button "
            f"hold, {c['phone.opened_elsewhere']:,} app openings elsewhere, "
            f"{c['phone.offline']:,} times without a network",
            f"BLE: {c['ble.drains']:,} drains, {c['ble.notifications']:,} notifications "
            f"({c['ble.notifications_lost']:,} lost), {c['ble.rewinds']:,} cursor rewinds, "
            f"{c['ble.dropped_mid_drain']:,} connections dropped mid-drain, "
            f"{c['ble.records_redrained']:,} records drained twice in one connection; "
            f"{c['phone.drains_forgotten']:,} drains lost with a killed app, "
            f"{c['phone.cursors_lost']:,} cursors lost",
            f"HTTPS uploads: {c['gateway.requests']:,} requests, {c['gateway.accepted']:,} "
            f"accepted, {c['gateway.duplicate']:,} duplicate, {c['gateway.rejected']:,} "
            f"rejected; {c['gateway.responses_lost']:,} answers lost on the way back",
        ]
    if devices.get("retail-cart"):
        out += [
            f"carts: {c['store.customers']:,} customers, sessions "
            f"{c['cart.sessions.complete']:,} complete / {c['cart.sessions.abandoned']:,} "
            f"abandoned / {c['cart.sessions.voided']:,} voided, {c['cart.scan']:,} scans, "
            f"{c['cart.health']:,} health, {c['cart.fault']:,} faults, {c['cart.pauses']:,} "
            f"pauses, {c['cart.battery_swaps']:,} battery swaps, "
            f"{c['cart.left_in_car_park']:,} left in the car park",
            f"cart links: {c['store.outages']:,} store outages, {c['cart.wifi_flaps']:,} Wi-Fi "
            f"flaps, {c['cart.links_lost.wifi'] + c['cart.links_lost.lte-m']:,} links lost; "
            f"{c['cart.stored_offline']:,} records kept in flash while offline, "
            f"{c['cart.republished']:,} republished on reconnect, "
            f"{c['cart.paid_at_terminal']:,} paid at the store's terminal",
        ]
    if devices.get("power-tool"):
        out.append(
            f"tools: {c['tool.readings']:,} readings on the legacy topic, "
            f"{c['tool.coverage_lost']:,} coverage drops, {c['tool.readings_held']:,} held "
            f"while offline, {c['tool.readings_dropped']:,} dropped from a full queue"
        )
    if c["rollouts.created"] or c["rollouts.refused"]:
        out.append(
            f"firmware: {c['rollouts.created']:,} rollouts created ({c['rollouts.refused']:,} "
            f"refused), {c['rollouts.halted']:,} halted; {c['ota.jobs']:,} jobs on carts' "
            f"commands topics, {c['ota.images_fetched']:,} images fetched by apps, "
            f"{c['ota.installed']:,} installs, {c['ota.downloads_resumed']:,} downloads resumed "
            f"after a dropped link, {c['ota.ble_windows']:,} BLE windows "
            f"({c['ota.ble_windows_interrupted']:,} cut short); "
            f"{c['ota.crashes_at_boot']:,} crashes at boot "
            f"({c['ota.rolled_back_by_bootloader']:,} rolled back by the bootloader), "
            f"{c['ota.crashes_after_boot']:,} crashes after boot, "
            f"{c['ota.power_cycles']:,} dark devices power-cycled"
        )
    if devices.get("retail-cart") or devices.get("power-tool"):
        out.append(
            f"MQTT: at most {c['mqtt.connected_peak']:,} devices connected at once, "
            f"{c['mqtt.publishes']:,} publishes, "
            f"{c['mqtt.unacknowledged_at_link_loss']:,} unacknowledged when a link died (sent "
            f"again), {c['mqtt.acks_for_copies']:,} acknowledgements for copies of records "
            "acknowledged before"
        )
    return out


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _runs(runs: list[tuple[int, int]], shown: int = 3) -> str:
    text = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in runs[:shown])
    return text + (f" +{len(runs) - shown}" if len(runs) > shown else "")


def render_devices(report: RunReport, console: Console, limit: int) -> None:
    """Device by device: what the platform should hold (the first ``limit``)."""
    total = len(report.comparison.devices)
    title = f"Per device (the first {limit:,} of {total:,})" if limit < total else "Per device"
    table = Table(title=title)
    for column in ("serial", "class", "site"):
        table.add_column(column, no_wrap=True)
    for column in ("expected", "landed", "lost", "pending", "overwritten"):
        table.add_column(column, justify="right")
    for d in report.comparison.devices[:limit]:
        table.add_row(
            d.serial,
            d.device_class,
            d.site or "",
            f"{d.expected:,}",
            f"{d.landed:,}",
            _runs(d.lost),
            _runs(d.pending),
            f"{d.overwritten:,}",
        )
    console.print(table)


def render_attacks(report: RunReport, console: Console) -> None:
    """The adversaries' attempts, what the contract says they get and what they got."""
    adversary = report.adversary
    if adversary is not None:
        rows: Counter[tuple[str, str, str, str, str]] = Counter(
            (a.attack, a.how, a.account, a.expected, a.answer) for a in adversary.attempts
        )
        table = Table(title="Attacks: what each attempt must be answered, and was")
        for column in ("attack", "attempt", "token", "expected", "answered"):
            table.add_column(column)
        table.add_column("records", justify="right")
        for (attack, how, account, expected, answer), n in sorted(rows.items()):
            shown = answer if answer == expected else f"[bold red]{answer}[/]"
            table.add_row(attack, how, account, expected, shown, f"{n:,}")
        console.print(table)
        devices = len({a.serial for a in adversary.attempts})
        if adversary.changed:
            console.print(
                f"  [bold red]{len(adversary.changed)} of {devices} attacked devices changed[/] "
                "in the platform's stores (see the mismatches)"
            )
        else:
            console.print(
                f"  the {devices} attacked devices hold the same events, owner, bonds and state "
                "after the attacks as before"
            )
    bad = report.miscalibrated()
    if bad:
        console.print(
            f"miscalibrated weight platforms: {len(bad)} carts whose scans were accepted with "
            "wrong weights (genuine, signed records: the platform cannot know)"
        )
        for row in bad:
            console.print(
                f"  {row['serial']} ({row['store']}): reads x{row['scale']}, {row['scans']} scans"
            )


def render_rollouts(report: RunReport, console: Console) -> None:
    """Each rollout the operator made: devices by update state at the end, and decisions."""
    operator = report.operator
    if operator is None:
        return
    for spec, rid in operator.created:
        states = report.rollout_states.get(rid, {})
        counts = ", ".join(f"{n:,} {state}" for state, n in sorted(states.items()))
        console.print(f"rollout {rid} ({spec.device_class} {spec.version}): {counts}")
        for at, r, what in operator.decisions:
            if r == rid:
                when = dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
                console.print(f"  {when}: {what}")
    for refused in operator.failures:
        console.print(f"[bold]rollout refused[/]: {refused}")


def render(report: RunReport, console: Console, shown: int = 25) -> None:
    s = report.scenario
    when = dt.datetime.fromtimestamp(report.start, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    span = (report.end - report.start) / 3600
    speed = "as fast as it goes" if report.speed is None else f"x{report.speed:,.0f}"
    console.print(
        f"[bold]{s.name}[/]: {sum(report.devices.values()):,} devices from {when}, "
        f"{span:,.1f} simulated hours in {report.real_seconds:,.1f} s ({speed})"
    )
    console.print("[bold]What the world did[/]")
    for line in _lines(report.counts, report.devices):
        console.print(f"  {line}")
    for cls, late in report.delays.items():
        if cls == "oral-care-brush":
            console.print(
                f"  {cls}: data reached tether {_span(late['median'])} after it was recorded "
                f"(median; 90% within {_span(late['p90'])}, the latest {_span(late['max'])})"
            )
        elif late["held_back"]:
            console.print(
                f"  {cls}: {late['held_back']:,.0f} records held back on the device (longer than "
                f"a live link's {_span(report.scenario.networks.ack_within)}), the longest "
                f"{_span(late['max'])}"
            )
    table = Table(title="What the platform should hold, and holds")
    table.add_column("class", no_wrap=True)
    for column in ("devices", "expected", "landed", "lost in", "lost seqs", "pending"):
        table.add_column(column, justify="right")
    for cls, row in report.comparison.by_class().items():
        table.add_row(
            cls,
            f"{row['devices']:,}",
            f"{row['expected']:,}",
            f"{row['landed']:,}",
            f"{row['with_lost']:,}",
            f"{row['lost']:,}",
            f"{row['pending']:,}",
        )
    console.print(table)
    console.print(
        "  expected: records that reached a door; lost in: devices with lost gaps; lost seqs and "
        "pending: the gaps the platform must report (overwritten on the device, or still to come)"
    )
    if report.comparison.sessions:
        ends = ", ".join(f"{n:,} {k}" for k, n in sorted(report.comparison.sessions.items()))
        console.print(f"cart sessions in the platform, each ended once: {ends}")
    render_attacks(report, console)
    render_rollouts(report, console)
    mismatches = report.comparison.mismatches
    if not mismatches:
        console.print("[bold green]match[/]: the platform holds exactly what the devices delivered")
        return
    kinds = Counter(m.kind for m in mismatches)
    console.print(
        f"[bold red]{len(mismatches):,} mismatches[/] "
        + ", ".join(f"{n} {k}" for k, n in kinds.most_common())
    )
    for m in mismatches[:shown]:
        console.print(f"  {m}")
    if len(mismatches) > shown:
        console.print(f"  ... and {len(mismatches) - shown} more (--report FILE has them all)")
