from __future__ import annotations

from typing import Any

import pytest

from tether.masking.errors import FreeTextError
from tether.masking.freetext import get_redactor, parse_stamps
from tether.masking.rubric import DEFAULT_ENTITIES


@pytest.fixture(scope="module")
def redactor() -> Any:
    return get_redactor(DEFAULT_ENTITIES, 0.35)


def test_redacts_names_contacts_and_street_addresses(redactor: Any) -> None:
    [r] = redactor.redact_many(
        [
            "Maria Garcia asked to move it to 14 Elm Road, Dayton, OH 45402; call (415) 201-3344"
            " or write to maria.garcia@example.com"
        ]
    )
    for gone in ("Maria", "Garcia", "Elm Road", "201-3344", "example.com"):
        assert gone not in r.text
    kinds = dict(r.found)
    assert {"PERSON", "STREET_ADDRESS", "PHONE_NUMBER"} <= set(kinds)
    assert "<PERSON>" in r.text
    assert r.stamp("notes") == "notes:" + ",".join(f"{k}={n}" for k, n in r.found)


def test_clean_text_passes_and_redaction_is_a_fixed_point(redactor: Any) -> None:
    texts = ["Battery swapped, no issues.", "Site contact Omar Clarke, (713) 974-7227."]
    out = redactor.redact_many(texts)
    assert out[0].text == texts[0] and out[0].found == ()
    assert redactor.find([r.text for r in out]) == [[], []]


def test_email_recogniser_never_reaches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from tether.masking.freetext import _registry

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("tried to open a network connection")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    registry = _registry()  # a fresh one: its suffix list is first loaded under the patch
    [email] = [r for r in registry.recognizers if "EMAIL_ADDRESS" in r.supported_entities]
    assert email.validate_result("lee.kim@example.org") is True
    assert email.validate_result("lee.kim@nowhere.invalidtld") is False


def test_failure_stops_the_job(redactor: Any) -> None:
    with pytest.raises(FreeTextError, match="job stops rather than pass text through"):
        redactor.redact_many(["word " * 250_000])


def test_stamps_parse_back() -> None:
    counts = parse_stamps("notes:EMAIL_ADDRESS=1,PERSON=2;remarks:PERSON=1")
    assert counts[("notes", "PERSON")] == 2 and counts[("remarks", "PERSON")] == 1
    assert parse_stamps("") == parse_stamps(None)
