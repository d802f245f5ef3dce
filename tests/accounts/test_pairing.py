"""Bonds and pairing (contract section 9): ownership moves only after a physical act.

The gate calls ``complete_pairing`` only for a bond record whose signature it has
verified against the device's key; here that call stands for "the device, on a
button hold, signed a bond record carrying this challenge, and this account
uploaded it". An account that never holds the device never gets such a record.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.accounts.conftest import Fleet, make_fleet
from tests.identity.conftest import Clock
from tether.accounts.base import CHALLENGE_TTL_SECONDS, Account
from tether.errors import ConflictError, NotFoundError
from tether.registry.sql import make_engine


def _owned(fleet: Fleet, serial: str) -> Account:
    """An account that owns ``serial`` through a completed pairing."""
    store = fleet.platform.accounts
    account = store.create_account("acme", fleet.clock())
    challenge = store.create_challenge(account.id, serial, fleet.clock())
    assert store.complete_pairing(serial, challenge.challenge_hex, account.id, fleet.clock())
    return account


def test_a_challenge_is_14_random_bytes_bound_to_account_and_device(fleet: Fleet) -> None:
    store = fleet.platform.accounts
    account = store.create_account("acme", fleet.clock())
    serial = fleet.acme[0]
    c1 = store.create_challenge(account.id, serial, fleet.clock())
    c2 = store.create_challenge(account.id, serial, fleet.clock())
    assert re.fullmatch(r"[0-9a-f]{28}", c1.challenge_hex)
    assert c1.challenge_hex != c2.challenge_hex
    assert (c1.serial, c1.account_id) == (serial, account.id)
    assert c1.expires_at == fleet.clock() + CHALLENGE_TTL_SECONDS == fleet.clock() + 600
    # Asking for a challenge changes nothing.
    assert store.owner(serial) is None


def test_challenges_only_for_known_active_devices_of_the_accounts_tenant(fleet: Fleet) -> None:
    store = fleet.platform.accounts
    account = store.create_account("acme", fleet.clock())
    with pytest.raises(NotFoundError, match="NO-SUCH"):
        store.create_challenge(account.id, "NO-SUCH", fleet.clock())
    with pytest.raises(NotFoundError, match="tenant 'acme'"):  # no hint of other tenants
        store.create_challenge(account.id, fleet.globex[0], fleet.clock())
    with pytest.raises(NotFoundError, match="account"):
        store.create_challenge("acc_0000000000000000", fleet.acme[0], fleet.clock())
    fleet.platform.revoke(fleet.acme[2], "stolen")
    with pytest.raises(ConflictError, match="revoked"):
        store.create_challenge(account.id, fleet.acme[2], fleet.clock())


def test_first_pairing_makes_the_account_the_owner(fleet: Fleet) -> None:
    store = fleet.platform.accounts
    serial = fleet.acme[0]
    account = _owned(fleet, serial)
    assert store.owner(serial) == account.id
    assert store.is_bonded(account.id, serial)
    assert not store.is_bonded(account.id, fleet.acme[1])
    assert [b.serial for b in store.bonds_of(account.id)] == [serial]


def test_a_challenge_is_usable_once(fleet: Fleet) -> None:
    store = fleet.platform.accounts
    serial = fleet.acme[0]
    alice = store.create_account("acme", fleet.clock())
    challenge = store.create_challenge(alice.id, serial, fleet.clock())
    assert store.complete_pairing(serial, challenge.challenge_hex, alice.id, fleet.clock())
    # The same bond record again (a retried upload) changes nothing and is not refused.
    history = store.bond_history(serial)
    assert store.complete_pairing(serial, challenge.challenge_hex, alice.id, fleet.clock())
    assert store.bond_history(serial) == history

    # Once ownership has moved on, the old record cannot bring it back.
    bob = _owned(fleet, serial)
    assert not store.complete_pairing(serial, challenge.challenge_hex, alice.id, fleet.clock())
    assert store.owner(serial) == bob.id
    assert "challenge already used" in store.audit(serial, limit=1)[0].detail


def test_a_challenge_expires_after_ten_minutes(fleet: Fleet, clock: Clock) -> None:
    store = fleet.platform.accounts
    account = store.create_account("acme", clock())
    late = store.create_challenge(account.id, fleet.acme[0], clock())
    in_time = store.create_challenge(account.id, fleet.acme[1], clock())
    clock.advance(CHALLENGE_TTL_SECONDS - 0.001)
    assert store.complete_pairing(fleet.acme[1], in_time.challenge_hex, account.id, clock())
    clock.advance(0.001)
    assert not store.complete_pairing(fleet.acme[0], late.challenge_hex, account.id, clock())
    assert store.owner(fleet.acme[0]) is None
    refused = store.audit(fleet.acme[0], limit=1)[0]
    assert refused.action == "pairing.refused" and "expired" in refused.detail


def test_a_challenge_is_bound_to_its_account_and_its_device(fleet: Fleet) -> None:
    store = fleet.platform.accounts
    alice = store.create_account("acme", fleet.clock())
    bob = store.create_account("acme", fleet.clock())
    challenge = store.create_challenge(alice.id, fleet.acme[0], fleet.clock())
    # Bob uploads a bond record carrying Alice's challenge: not his.
    assert not store.complete_pairing(fleet.acme[0], challenge.challenge_hex, bob.id, fleet.clock())
    # Another device signs a bond record with Alice's challenge: not that device's.
    assert not store.complete_pairing(
        fleet.acme[1], challenge.challenge_hex, alice.id, fleet.clock()
    )
    assert store.owner(fleet.acme[0]) is None and store.owner(fleet.acme[1]) is None
    details = [e.detail for e in store.audit(limit=2)]
    assert "issued for device" in details[0] and "issued to account" in details[1]
    # The challenge was not consumed by the refusals: Alice can still use it.
    assert store.complete_pairing(fleet.acme[0], challenge.challenge_hex, alice.id, fleet.clock())


@pytest.mark.parametrize("junk", ["", "zz" * 14, "00" * 13, "00" * 15, "0" * 10_000])
def test_unknown_or_malformed_challenges_are_refused(fleet: Fleet, junk: str) -> None:
    store = fleet.platform.accounts
    account = store.create_account("acme", fleet.clock())
    assert not store.complete_pairing(fleet.acme[0], junk, account.id, fleet.clock())
    assert store.owner(fleet.acme[0]) is None
    entry = store.audit(fleet.acme[0], limit=1)[0]
    assert entry.action == "pairing.refused" and entry.actor == account.id
    assert len(entry.detail) < 200


def test_challenge_case_does_not_matter(fleet: Fleet) -> None:
    store = fleet.platform.accounts
    account = store.create_account("acme", fleet.clock())
    challenge = store.create_challenge(account.id, fleet.acme[0], fleet.clock())
    upper = challenge.challenge_hex.upper()
    assert store.complete_pairing(fleet.acme[0], upper, account.id, fleet.clock())


def test_a_phished_account_cannot_take_the_device_without_its_signed_bond_record(
    fleet: Fleet, clock: Clock
) -> None:
    store = fleet.platform.accounts
    serial = fleet.acme[0]
    victim = store.create_account("acme", clock())
    v_challenge = store.create_challenge(victim.id, serial, clock())
    assert store.complete_pairing(serial, v_challenge.challenge_hex, victim.id, clock())

    # With the victim's stolen password, the attacker signs in to their own account on
    # their own phone and asks for a challenge for the victim's brush. They get one...
    clock.advance(60)
    attacker = store.create_account("acme", clock())
    a_challenge = store.create_challenge(attacker.id, serial, clock())
    # ...but the brush is in the victim's bathroom: no button is held, so no signed bond
    # record carrying a_challenge ever exists. All the attacker has is what they can
    # capture or invent: the victim's old bond record, replayed through their account,
    # and made-up challenges (a forged record never passes the gate's signature check).
    assert not store.complete_pairing(serial, v_challenge.challenge_hex, attacker.id, clock())
    clock.advance(CHALLENGE_TTL_SECONDS)
    assert store.owner(serial) == victim.id
    assert store.is_bonded(victim.id, serial)
    assert not store.is_bonded(attacker.id, serial)
    assert store.bonds_of(attacker.id) == []
    # Even if the challenge later leaks to a device-holder, it has expired.
    assert not store.complete_pairing(serial, a_challenge.challenge_hex, attacker.id, clock())
    assert store.owner(serial) == victim.id

    actions = [(e.actor, e.action) for e in store.audit(serial)]
    assert actions[:3] == [
        (attacker.id, "pairing.refused"),
        (attacker.id, "pairing.refused"),
        (attacker.id, "pairing.challenge"),
    ]


def test_a_re_pair_moves_ownership_and_ends_the_old_bond(fleet: Fleet, clock: Clock) -> None:
    store = fleet.platform.accounts
    serial = fleet.acme[0]
    old = _owned(fleet, serial)
    paired_at = clock()
    clock.advance(3600)
    new = store.create_account("acme", clock())
    challenge = store.create_challenge(new.id, serial, clock())
    clock.advance(30)  # the button is held, the record is uploaded
    assert store.complete_pairing(serial, challenge.challenge_hex, new.id, clock())

    assert store.owner(serial) == new.id
    assert not store.is_bonded(old.id, serial)  # the old owner's next upload: not_bonded
    assert store.is_bonded(new.id, serial)
    assert store.bonds_of(old.id) == []
    first, second = store.bond_history(serial)
    assert (first.account_id, first.since, first.ended_at) == (old.id, paired_at, clock())
    assert (second.account_id, second.since, second.ended_at) == (new.id, clock(), None)
    assert not first.current and second.current

    done = store.audit(serial, limit=1)[0]
    assert (done.at, done.actor, done.action) == (clock(), new.id, "pairing.completed")
    assert f"the bond of {old.id} ended" in done.detail and challenge.challenge_hex in done.detail


def test_re_pairing_to_the_same_account_keeps_it_the_owner(fleet: Fleet) -> None:
    store = fleet.platform.accounts
    serial = fleet.acme[0]
    account = _owned(fleet, serial)
    challenge = store.create_challenge(account.id, serial, fleet.clock())
    assert store.complete_pairing(serial, challenge.challenge_hex, account.id, fleet.clock())
    assert store.owner(serial) == account.id
    assert len(store.bond_history(serial)) == 2


def test_the_database_holds_at_most_one_current_owner(fleet: Fleet) -> None:
    store = fleet.platform.accounts
    serial = fleet.acme[0]
    a = _owned(fleet, serial)
    b = store.create_account("acme", fleet.clock())
    engine = make_engine(fleet.platform.settings.resolved_entity_url())
    try:
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO bonds (serial, account_id, since, via, changed_gen) "
                    "VALUES (:s, :a, 0, 'operator', 0)"
                ),
                {"s": serial, "a": b.id},
            )
    finally:
        engine.dispose()
    assert store.owner(serial) == a.id


# Operators' first assignment -----------------------------------------------------------


def test_an_operator_bonds_a_device_once_and_needs_force_and_a_reason_after(
    fleet: Fleet,
) -> None:
    store = fleet.platform.accounts
    serial = fleet.acme[0]
    shop = store.create_account("acme", fleet.clock())
    other = store.create_account("acme", fleet.clock())
    bond = store.bond(serial, shop.id, fleet.clock(), actor="operator:ops", reason="shop stock")
    assert (bond.serial, bond.account_id) == (serial, shop.id)
    assert store.is_bonded(shop.id, serial)

    with pytest.raises(ConflictError, match=r"already belongs to .*pairing.*--force"):
        store.bond(serial, other.id, fleet.clock(), actor="operator:ops", reason="")
    with pytest.raises(ConflictError, match="already bonded"):
        store.bond(serial, shop.id, fleet.clock(), actor="operator:ops", reason="again")
    with pytest.raises(ConflictError, match="reason"):
        store.bond(serial, other.id, fleet.clock(), actor="operator:ops", reason=" ", force=True)
    assert store.owner(serial) == shop.id

    store.bond(
        serial, other.id, fleet.clock(), actor="operator:ops", reason="support #42", force=True
    )
    assert store.owner(serial) == other.id and not store.is_bonded(shop.id, serial)
    replaced, assigned = store.audit(serial, limit=2)
    assert (assigned.action, assigned.actor) == ("bond.assigned", "operator:ops")
    assert replaced.action == "bond.replaced"
    assert shop.id in replaced.detail and "support #42" in replaced.detail


def test_an_operator_cannot_bond_across_tenants(fleet: Fleet) -> None:
    store = fleet.platform.accounts
    account = store.create_account("acme", fleet.clock())
    with pytest.raises(NotFoundError):
        store.bond(fleet.globex[0], account.id, fleet.clock(), actor="ops", reason="x", force=True)
    assert store.owner(fleet.globex[0]) is None


# The bond cache ---------------------------------------------------------------------------


def test_is_bonded_is_answered_from_memory(fleet: Fleet) -> None:
    store = fleet.platform.accounts
    serial = fleet.acme[0]
    account = _owned(fleet, serial)
    assert store.is_bonded(account.id, serial)
    statements: list[str] = []
    engine = store.engine  # type: ignore[attr-defined]

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        for _ in range(10_000):
            assert store.is_bonded(account.id, serial)
            assert not store.is_bonded("acc_someoneelse00000", serial)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    # At most the occasional generation check, never a query per call.
    assert len(statements) <= 2, statements


def test_another_process_sees_a_re_pair_within_the_poll(tmp_path: Path, clock: Clock) -> None:
    poll = 0.05
    a = make_fleet(tmp_path / "shared", clock, identity={"revocation_poll_seconds": poll})
    settings_b = a.platform.settings
    from tether.platform import Platform

    b = Platform.open(settings_b, clock=clock)  # a second process on the same data dir
    try:
        serial, other = a.acme[0], a.acme[1]
        old = _owned(a, serial)
        time.sleep(2 * poll)
        # The other process warms its cache: old owns serial, nobody owns other.
        assert b.accounts.is_bonded(old.id, serial)
        assert b.accounts.owner(other) is None

        new = a.platform.accounts.create_account("acme", clock())
        challenge = a.platform.accounts.create_challenge(new.id, serial, clock())
        assert a.platform.accounts.complete_pairing(
            serial, challenge.challenge_hex, new.id, clock()
        )
        a.platform.accounts.bond(other, old.id, clock(), actor="ops", reason="factory")

        time.sleep(2 * poll)
        assert not b.accounts.is_bonded(old.id, serial)
        assert b.accounts.is_bonded(new.id, serial)
        assert b.accounts.owner(other) == old.id
    finally:
        b.close()
        a.platform.close()


def test_refresh_sees_another_processs_change_at_once(fleet: Fleet) -> None:
    from tether.platform import Platform

    other = Platform.open(fleet.platform.settings, clock=fleet.clock)
    try:
        serial = fleet.acme[0]
        assert other.accounts.owner(serial) is None  # cached as unowned
        account = _owned(fleet, serial)
        other.accounts.refresh()
        assert other.accounts.is_bonded(account.id, serial)
    finally:
        other.close()


def test_concurrent_pairings_leave_exactly_one_owner(fleet: Fleet) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store = fleet.platform.accounts
    serial = fleet.acme[0]
    pairs = []
    for _ in range(8):
        account = store.create_account("acme", fleet.clock())
        pairs.append((account.id, store.create_challenge(account.id, serial, fleet.clock())))
    with ThreadPoolExecutor(8) as pool:
        done = list(
            pool.map(
                lambda p: store.complete_pairing(serial, p[1].challenge_hex, p[0], fleet.clock()),
                pairs,
            )
        )
    assert done == [True] * 8
    history = store.bond_history(serial)
    assert len(history) == 8 and [b.current for b in history].count(True) == 1
    assert store.owner(serial) == history[-1].account_id
    assert sorted(b.account_id for b in history) == sorted(a for a, _ in pairs)
