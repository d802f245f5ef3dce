"""``tether rubric`` and the rubric behind it: five answers in, one radio out."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from typer.testing import CliRunner

from tether.advice.rubric import (
    QUESTIONS,
    Answers,
    InvalidAnswerError,
    question,
    recommend,
)
from tether.cli.main import app

runner = CliRunner()

# The three shipped device classes, answered the way docs/rubric.md answers them.
SHIPPED = {
    "oral-care-brush": (
        {
            "range": "phone",
            "cadence": "hourly",
            "budget": "under-5",
            "power": "battery-years",
            "security": "regulated",
        },
        "ble-phone",
    ),
    "retail-cart": (
        {
            "range": "site-wifi-and-beyond",
            "cadence": "realtime",
            "budget": "over-15",
            "power": "wall",
            "security": "regulated",
        },
        "wifi-lte-m",
    ),
    "power-tool": (
        {
            "range": "phone-and-site-gateway",
            "cadence": "hourly",
            "budget": "5-to-15",
            "power": "wall",
            "security": "commercial",
        },
        "ble-lora",
    ),
}


def _options(answers: dict[str, str]) -> list[str]:
    return [part for key, value in answers.items() for part in (f"--{key}", value)]


def _flat(text: str) -> str:
    """Output with Rich's box drawing and line wrapping taken out."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def _json(args: list[str], stdin: str | None = None) -> dict[str, Any]:
    result = runner.invoke(app, ["rubric", "--json", *args], input=stdin)
    assert result.exit_code == 0, result.output
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


@pytest.mark.parametrize("device_class", sorted(SHIPPED))
def test_shipped_classes_get_their_radios(device_class: str) -> None:
    answers, radio = SHIPPED[device_class]
    assert recommend(Answers(**answers)).radio.key == radio
    out = _json(_options(answers))
    assert out["radio"]["key"] == radio
    assert out["fits"] is True and out["conflicts"] == []
    assert out["answers"] == answers
    assert [r["question"] for r in out["reasons"]] == [q.key for q in QUESTIONS]


def test_all_options_given_means_no_prompt_and_a_readable_answer() -> None:
    answers, _ = SHIPPED["retail-cart"]
    result = runner.invoke(app, ["rubric", *_options(answers)])
    assert result.exit_code == 0, result.output
    flat = _flat(result.output)
    assert "Answer (" not in flat
    assert "Wi-Fi with LTE-M fallback" in flat
    assert "Trade-offs" in flat and "data plan" in flat
    assert "revoking one device in under a minute" in flat


def test_json_output_parses_and_carries_everything() -> None:
    answers, _ = SHIPPED["power-tool"]
    out = _json(_options(answers))
    assert set(out) == {"radio", "fits", "answers", "reasons", "tradeoffs", "security", "conflicts"}
    assert out["radio"]["name"] == "BLE + LoRa dual radio"
    assert out["tradeoffs"] and all(isinstance(t, str) for t in out["tradeoffs"])
    assert "certificate rotation" in out["security"]
    assert "a hardware secure element (ATECC608A class)" not in out["security"]


def test_interactive_answers_by_number() -> None:
    # site-wifi-and-beyond, realtime, over-15, wall, regulated: the cart
    result = runner.invoke(app, ["rubric"], input="4\n4\n3\n1\n3\n")
    assert result.exit_code == 0, result.output
    flat = _flat(result.output)
    for q in QUESTIONS:
        assert q.text in flat
    assert "Wi-Fi with LTE-M fallback" in flat


def test_an_invalid_answer_is_asked_again() -> None:
    result = runner.invoke(app, ["rubric"], input="9\nnearby\n1\nhourly\nunder-5\n2\n3\n")
    assert result.exit_code == 0, result.output
    flat = _flat(result.output)
    assert "'9' is not one of the answers" in flat
    assert "'nearby' is not one of the answers" in flat
    assert "Type a number from 1 to 7, or one of: phone, phone-and-site-gateway" in flat
    assert flat.count("Answer (1-7)") == 3  # asked, asked again, asked a third time
    assert "BLE through the owner's phone" in flat


def test_options_and_prompts_mix() -> None:
    out = _json(
        ["--range", "phone-and-site-gateway", "--cadence", "hourly", "--security", "commercial"],
        stdin="5-to-15\nwall\n",
    )
    assert out["radio"]["key"] == "ble-lora"
    assert out["answers"]["budget"] == "5-to-15" and out["answers"]["power"] == "wall"


def test_input_ending_before_the_last_answer_exits_nonzero() -> None:
    result = runner.invoke(app, ["rubric"], input="1\n1\n")
    assert result.exit_code == 1
    assert "Pass --budget" in _flat(result.output)


@pytest.mark.parametrize(
    ("option", "bad", "valid"),
    [
        ("--power", "battery-year", "wall, battery-years, harvest"),
        ("--range", "far", "phone, phone-and-site-gateway, site-wifi"),
        ("--security", "paranoid", "consumer, commercial, regulated"),
    ],
)
def test_a_bad_option_exits_2_naming_the_valid_answers(option: str, bad: str, valid: str) -> None:
    result = runner.invoke(app, ["rubric", option, bad])
    assert result.exit_code == 2
    flat = _flat(result.output)
    assert f"'{bad}' is not an answer" in flat
    assert f"valid answers: {valid}" in flat
    assert "Answer (" not in flat


def test_option_values_ignore_case() -> None:
    answers, radio = SHIPPED["oral-care-brush"]
    out = _json(_options({k: v.upper() for k, v in answers.items()}))
    assert out["radio"]["key"] == radio and out["answers"] == answers


# The rubric itself.


def _answers(**changes: str) -> Answers:
    base = dict(SHIPPED["oral-care-brush"][0])
    base.update(changes)
    return Answers(**base)


def test_answers_are_validated() -> None:
    with pytest.raises(InvalidAnswerError) as caught:
        _answers(power="solar")
    assert caught.value.valid == ("wall", "battery-years", "harvest")
    assert "valid answers: wall, battery-years, harvest" in str(caught.value)


def test_choose_reads_numbers_and_keys_only() -> None:
    power = question("power")
    assert power.choose("2") is power.answers[1]
    assert power.choose(" Harvest ") is power.answers[2]
    assert power.choose("0") is None and power.choose("4") is None and power.choose("") is None


def test_tested_answer_keys_are_unique_across_questions() -> None:
    keys = [a.key for k in ("cadence", "budget", "power") for a in question(k).answers]
    assert len(keys) == len(set(keys))


def test_a_small_battery_pushes_wifi_back_to_ble_mesh() -> None:
    rec = recommend(_answers(range="site-wifi", power="battery-years", budget="under-5"))
    assert rec.radio.key == "ble-mesh" and rec.fits
    power = next(r for r in rec.reasons if r.question == "power")
    assert power.text.startswith("Wi-Fi needs more power")


def test_a_message_a_second_moves_field_devices_from_lora_to_cellular() -> None:
    rec = recommend(
        _answers(range="outdoor-10km", cadence="per-second", budget="over-15", power="wall")
    )
    assert rec.radio.key == "lte-m" and rec.fits
    assert recommend(_answers(range="outdoor-10km", budget="5-to-15")).radio.key == "lorawan"


def test_high_rate_anywhere_on_wall_power_is_broadband() -> None:
    rec = recommend(_answers(range="anywhere", cadence="realtime", budget="over-15", power="wall"))
    assert rec.radio.key == "cellular-broadband"


def test_contradictory_answers_are_reported_as_conflicts() -> None:
    rec = recommend(_answers(range="site-wifi-and-beyond", cadence="realtime"))
    assert not rec.fits
    assert rec.radio.key == "wifi-lte-m"  # reach decides; the rest is to renegotiate
    joined = " ".join(rec.conflicts)
    assert "Question 3 (under-5)" in joined and "Question 4 (battery-years)" in joined
    assert "renegotiate the rate or the power budget" in joined


def test_security_adds_requirements_but_never_changes_the_radio() -> None:
    levels = ("consumer", "commercial", "regulated")
    recs = [recommend(_answers(security=level)) for level in levels]
    assert {r.radio.key for r in recs} == {"ble-phone"}
    sizes = [len(r.security) for r in recs]
    assert sizes == sorted(sizes) and sizes[0] < sizes[1] < sizes[2]
    assert not any("secure element" in t for t in recs[0].tradeoffs)
    assert any("secure element" in t for t in recs[2].tradeoffs)  # the budget is under $5
