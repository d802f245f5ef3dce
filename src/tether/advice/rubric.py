"""The five-question wireless rubric: which radio a connected product should carry.

The questions are asked in a fixed order and the first one carries the most
weight. Reach (question 1) names the radio, or a short list of radios the reach
allows, best first. Message rate, radio budget and power (questions 2 to 4) then
test each candidate: a candidate every answer accepts wins; failing that, one
that is only at the edge of some answer; failing that, the reach's own radio is
returned together with the conflicts a product team has to renegotiate. The
buyer's security model (question 5) never changes the radio: it adds
requirements, and a secure element to the bill of materials.

Everything here is data and pure functions: no I/O, nothing to configure. The
command ``tether rubric`` asks the questions; ``docs/rubric.md`` explains them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from tether.errors import TetherError

__all__ = [
    "QUESTIONS",
    "RADIOS",
    "Answer",
    "Answers",
    "Fit",
    "InvalidAnswerError",
    "Question",
    "Radio",
    "Reason",
    "Recommendation",
    "question",
    "recommend",
]


class InvalidAnswerError(TetherError, ValueError):
    """An answer that is not one of its question's answers; names the valid ones."""

    def __init__(self, question_key: str, given: str, valid: tuple[str, ...]) -> None:
        super().__init__(
            f"{given!r} is not an answer to the {question_key} question; "
            f"valid answers: {', '.join(valid)}"
        )
        self.question_key = question_key
        self.given = given
        self.valid = valid


@dataclass(frozen=True)
class Answer:
    """One possible answer: a short key for scripts and a label for people."""

    key: str
    label: str


@dataclass(frozen=True)
class Question:
    """One of the five questions, with the answers it accepts, in display order."""

    number: int
    key: str
    text: str
    why: str
    answers: tuple[Answer, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(a.key for a in self.answers)

    def answer(self, key: str) -> Answer:
        """The answer with this key; InvalidAnswerError (naming the valid keys) if none."""
        for a in self.answers:
            if a.key == key:
                return a
        raise InvalidAnswerError(self.key, key, self.keys)

    def choose(self, text: str) -> Answer | None:
        """Read a typed answer: its number (1-based) or its key; None if it is neither."""
        text = text.strip()
        if text.isdigit() and 1 <= int(text) <= len(self.answers):
            return self.answers[int(text) - 1]
        lowered = text.lower()
        for a in self.answers:
            if a.key == lowered:
                return a
        return None


QUESTIONS: tuple[Question, ...] = (
    Question(
        1,
        "range",
        "How far, at worst, is the device from the nearest phone, gateway or router?",
        "Reach picks the radio; the other four questions only test that pick.",
        (
            Answer("phone", "Within about 30 m of its owner's phone, in sight of it"),
            Answer(
                "phone-and-site-gateway",
                "Usually near an operator's phone, at times a few hundred metres "
                "from a gateway on the site",
            ),
            Answer("site-wifi", "Indoors, within about 100 m of a Wi-Fi router the site runs"),
            Answer(
                "site-wifi-and-beyond",
                "On a site's Wi-Fi most of the time, but it can leave coverage "
                "(or the network can fail) and must keep reporting",
            ),
            Answer("indoor-no-router", "Indoors, within about 100 m, with no router to join"),
            Answer("outdoor-10km", "Outdoors, from 100 m up to about 10 km from a gateway"),
            Answer("anywhere", "Anywhere: no phone, gateway or router can be counted on"),
        ),
    ),
    Question(
        2,
        "cadence",
        "How often does it send, and how large is each message?",
        "Rate times size is both the bandwidth and the power the radio spends.",
        (
            Answer("hourly", "A small message (under ~100 bytes) every ten minutes to every hour"),
            Answer("minutely", "Up to a message a minute, each under ~1 KB"),
            Answer("per-second", "About a message every second"),
            Answer("realtime", "Real time: events as they happen, over a connection kept open"),
        ),
    ),
    Question(
        3,
        "budget",
        "How much of each device's bill of materials can the radio take?",
        "Radio silicon is paid on every unit; the choice fixes what is left for the rest.",
        (
            Answer("under-5", "Under $5"),
            Answer("5-to-15", "$5 to $15"),
            Answer("over-15", "Over $15, and a yearly data plan if one is needed"),
        ),
    ),
    Question(
        4,
        "power",
        "What powers it?",
        "A small battery that must last for years rules radios out before anything else.",
        (
            Answer(
                "wall",
                "Mains, or a large battery recharged often (daily, a tool pack): as good as a wall",
            ),
            Answer(
                "battery-years",
                "A small battery that must last a year or more (under ~1 mA on average)",
            ),
            Answer("harvest", "Harvested energy, solar or motion (under ~100 µA on average)"),
        ),
    ),
    Question(
        5,
        "security",
        "What security model does the buyer expect?",
        "It leaves the radio alone but decides whether a secure element is on the board.",
        (
            Answer("consumer", "Consumer, unmanaged"),
            Answer("commercial", "Commercial: a managed network or a managed fleet"),
            Answer("regulated", "Industrial or regulated"),
        ),
    ),
)

_BY_KEY: Mapping[str, Question] = {q.key: q for q in QUESTIONS}


def question(key: str) -> Question:
    """The question with this key (``range``, ``cadence``, ``budget``, ``power``, ``security``)."""
    return _BY_KEY[key]


@dataclass(frozen=True)
class Answers:
    """One answer key per question; validated on construction."""

    range: str
    cadence: str
    budget: str
    power: str
    security: str

    def __post_init__(self) -> None:
        for q in QUESTIONS:
            q.answer(self.of(q.key))

    def of(self, question_key: str) -> str:
        value = getattr(self, question_key)
        assert isinstance(value, str)
        return value

    def as_dict(self) -> dict[str, str]:
        return {q.key: self.of(q.key) for q in QUESTIONS}


class Fit(enum.Enum):
    """How well a radio suits one answer."""

    OK = "ok"
    MARGINAL = "marginal"
    OUT = "out"


@dataclass(frozen=True)
class Radio:
    """A radio (or pair of radios) the rubric can recommend.

    ``ok`` and ``marginal`` hold answer keys of the cadence, budget and power
    questions (those keys are unique across the three); any other answer rules
    the radio out. ``caveats`` says, per marginal answer, what the edge costs.
    """

    key: str
    name: str
    bom: str
    ok: frozenset[str]
    marginal: frozenset[str]
    caveats: tuple[tuple[str, str], ...]
    tradeoffs: tuple[str, ...]

    def fit(self, answer_key: str) -> Fit:
        if answer_key in self.ok:
            return Fit.OK
        if answer_key in self.marginal:
            return Fit.MARGINAL
        return Fit.OUT

    def caveat(self, answer_key: str) -> str:
        return dict(self.caveats).get(answer_key, f"{self.name} is at its limit here.")


_ALL_BUDGETS = frozenset({"under-5", "5-to-15", "over-15"})
_ALL_CADENCES = frozenset({"hourly", "minutely", "per-second", "realtime"})
_SPARSE = frozenset({"hourly", "minutely"})

RADIOS: tuple[Radio, ...] = (
    Radio(
        key="ble-phone",
        name="BLE through the owner's phone",
        bom="about $1-3",
        ok=_SPARSE | _ALL_BUDGETS | {"wall", "battery-years"},
        marginal=frozenset({"harvest"}),
        caveats=(
            (
                "harvest",
                "On harvested energy BLE can only advertise: beacon-style messages, "
                "no connection and no acknowledgements.",
            ),
        ),
        tradeoffs=(
            "Reach is about 10 m: data moves only while the phone is near and its app runs.",
            "The phone hands records over late, repeated and out of order: ingestion must "
            "dedupe on the device's own counter and correct its clock.",
            "The phone is a hop nobody controls: records have to be signed on the device.",
            "The cheapest radio there is, so most of the budget stays with the product.",
        ),
    ),
    Radio(
        key="ble-mesh",
        name="BLE mesh",
        bom="about $1-3",
        ok=_SPARSE | _ALL_BUDGETS | {"wall", "battery-years"},
        marginal=frozenset({"harvest"}),
        caveats=(
            (
                "harvest",
                "On harvested energy a node can only advertise; it cannot relay for others.",
            ),
        ),
        tradeoffs=(
            "Messages hop through other nodes: coverage depends on enough of them being in range.",
            "Relaying nodes listen all the time, so they want more power than leaf nodes.",
            "One node (a bridge) still needs a path to the cloud.",
        ),
    ),
    Radio(
        key="ble-lora",
        name="BLE + LoRa dual radio",
        bom="about $8-14 (LoRa module $7-12, BLE on the microcontroller)",
        ok=frozenset({"hourly", "5-to-15", "over-15", "wall", "battery-years"}),
        marginal=frozenset({"minutely"}),
        caveats=(
            (
                "minutely",
                "A message a minute is LoRa's edge: keep each one small; BLE carries the rest "
                "when a phone is near.",
            ),
        ),
        tradeoffs=(
            "Two radios to design in, certify and power.",
            "LoRa carries a trickle: small, infrequent messages; bulky transfers such as "
            "firmware go over BLE when a phone is near.",
            "The site needs a LoRa gateway (owned, or a network operator's).",
        ),
    ),
    Radio(
        key="wifi",
        name="Wi-Fi",
        bom="about $1.50-3 (Wi-Fi and BLE share one module)",
        ok=_ALL_CADENCES | _ALL_BUDGETS | {"wall"},
        marginal=frozenset(),
        caveats=(),
        tradeoffs=(
            "The worst battery story of any radio for its reach: wall power only.",
            "Reach ends at the site's network, some 50 m from a router; every device has "
            "to be given that network's credentials.",
            "The site's network, and its outages, become part of the product.",
        ),
    ),
    Radio(
        key="wifi-lte-m",
        name="Wi-Fi with LTE-M fallback",
        bom="about $14-28 (LTE-M module $12-25 beside the Wi-Fi one), plus a data plan",
        ok=_ALL_CADENCES | {"over-15", "wall"},
        marginal=frozenset(),
        caveats=(),
        tradeoffs=(
            "A cellular data plan on every device (about $5-20 a year) for a link that is "
            "idle most of the time; at fleet scale it can be the largest running cost.",
            "Two radios to certify and to switch between; when both are down the device "
            "has to store records and forward them later.",
            "LTE-M answers in a few hundred milliseconds: fine for a fallback, too slow "
            "for anything a person waits on.",
        ),
    ),
    Radio(
        key="lorawan",
        name="LoRaWAN",
        bom="about $7-12",
        ok=frozenset({"hourly", "5-to-15", "over-15", "wall", "battery-years"}),
        marginal=frozenset({"minutely"}),
        caveats=(
            (
                "minutely",
                "A message a minute is LoRa's edge: it works only with small messages and "
                "a nearby gateway.",
            ),
        ),
        tradeoffs=(
            "A trickle of data: small messages, a few an hour.",
            "Gateways within about 10 km, owned or a network operator's.",
            "Little room for downlink: commands and firmware updates are slow.",
        ),
    ),
    Radio(
        key="lte-m",
        name="LTE-M / NB-IoT cellular",
        bom="about $12-25, plus a data plan",
        ok=_SPARSE | {"over-15", "wall", "battery-years"},
        marginal=frozenset({"per-second", "realtime"}),
        caveats=(
            (
                "per-second",
                "At a message a second NB-IoT is out and LTE-M never sleeps; large messages "
                "want 4G/5G.",
            ),
            (
                "realtime",
                "A connection kept open means LTE-M (not NB-IoT) and no power-save sleep; "
                "large messages want 4G/5G.",
            ),
        ),
        tradeoffs=(
            "A data plan on every device for its whole life (about $5-20 a year).",
            "On a battery it lives on power-save mode: long sleeps between short sends.",
            "Coverage and roaming depend on carriers' networks.",
        ),
    ),
    Radio(
        key="cellular-broadband",
        name="4G/5G cellular",
        bom="over $25, plus a larger data plan",
        ok=_ALL_CADENCES | {"over-15", "wall"},
        marginal=frozenset(),
        caveats=(),
        tradeoffs=(
            "Power-hungry: wall power only.",
            "A dearer module than LTE-M and a bigger data plan; worth it only for large messages.",
        ),
    ),
)

_RADIO: Mapping[str, Radio] = {r.key: r for r in RADIOS}

# What each reach allows, best first; and why the first one follows from it.
_CANDIDATES: Mapping[str, tuple[str, ...]] = {
    "phone": ("ble-phone",),
    "phone-and-site-gateway": ("ble-lora",),
    "site-wifi": ("wifi", "ble-mesh"),
    "site-wifi-and-beyond": ("wifi-lte-m", "lte-m"),
    "indoor-no-router": ("ble-mesh",),
    "outdoor-10km": ("lorawan", "lte-m"),
    "anywhere": ("lte-m", "cellular-broadband"),
}

_REACH_WHY: Mapping[str, str] = {
    "phone": "The owner's phone is the only gateway in reach, and BLE is how a phone is reached.",
    "phone-and-site-gateway": (
        "BLE reaches the operator's phone; LoRa covers the few hundred metres to the site "
        "gateway when no phone is near."
    ),
    "site-wifi": "A router is already there and within Wi-Fi's reach.",
    "site-wifi-and-beyond": (
        "The site's Wi-Fi carries the traffic; LTE-M keeps the device reporting when it "
        "leaves coverage or the network fails."
    ),
    "indoor-no-router": "Short indoor reach with nothing to join: devices relay for each other.",
    "outdoor-10km": "Kilometres outdoors is LoRa's ground, on little power.",
    "anywhere": "Only a cellular network reaches anywhere; LTE-M and NB-IoT are its IoT tiers.",
}

_SECURITY: Mapping[str, tuple[str, ...]] = {
    "consumer": (
        "a certificate per device",
        "TLS to the cloud",
        "authentication decided in the cloud",
    ),
    "commercial": (
        "device attestation from a secure element or TPM",
        "certificate rotation",
        "tamper resistance on the device",
    ),
    "regulated": (
        "a hardware secure element (ATECC608A class)",
        "fleet behaviour monitoring",
        "revoking one device in under a minute",
    ),
}
_SECURITY_ORDER = ("consumer", "commercial", "regulated")
_SECURE_ELEMENT_COST = "$1.50-5"


@dataclass(frozen=True)
class Reason:
    """Why one answer led where it did."""

    question: str
    answer: str
    text: str


@dataclass(frozen=True)
class Recommendation:
    """The rubric's answer: a radio, one reason per question, and what it costs.

    ``conflicts`` is empty when the answers agree with each other; otherwise each
    entry names something the product team has to renegotiate.
    """

    radio: Radio
    answers: Answers
    reasons: tuple[Reason, ...]
    tradeoffs: tuple[str, ...]
    security: tuple[str, ...]
    conflicts: tuple[str, ...]

    @property
    def fits(self) -> bool:
        return not self.conflicts

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready form."""
        return {
            "radio": {"key": self.radio.key, "name": self.radio.name, "bom": self.radio.bom},
            "fits": self.fits,
            "answers": self.answers.as_dict(),
            "reasons": [
                {"question": r.question, "answer": r.answer, "text": r.text} for r in self.reasons
            ],
            "tradeoffs": list(self.tradeoffs),
            "security": list(self.security),
            "conflicts": list(self.conflicts),
        }


_TESTED = ("cadence", "budget", "power")


def _fits(radio: Radio, answers: Answers) -> tuple[Fit, ...]:
    return tuple(radio.fit(answers.of(k)) for k in _TESTED)


def _pick(candidates: tuple[Radio, ...], answers: Answers) -> Radio:
    for acceptable in ({Fit.OK}, {Fit.OK, Fit.MARGINAL}):
        for radio in candidates:
            if set(_fits(radio, answers)) <= acceptable:
                return radio
    return candidates[0]


def _ruled_out(radio: Radio, key: str, answer: str) -> str:
    if key == "cadence":
        return f"{radio.name} cannot carry this rate"
    if key == "budget":
        return f"{radio.name} costs {radio.bom}"
    if answer == "harvest":
        return f"{radio.name} needs more power than harvesting gives"
    return f"{radio.name} needs more power than a small battery gives for years"


def _fit_text(radio: Radio, key: str, answer: str) -> str:
    fit = radio.fit(answer)
    if fit is Fit.MARGINAL:
        return radio.caveat(answer)
    if fit is Fit.OUT:
        return f"{_ruled_out(radio, key, answer)}, so this answer rules it out."
    if key == "cadence":
        return f"{radio.name} carries this rate comfortably."
    if key == "budget":
        return f"{radio.name} fits: {radio.bom}."
    if answer == "wall":
        return "No power constraint: every radio is open."
    return f"{radio.name} lives within this power budget."


def _security(level: str) -> tuple[str, ...]:
    upto = _SECURITY_ORDER[: _SECURITY_ORDER.index(level) + 1]
    return tuple(item for tier in upto for item in _SECURITY[tier])


def _cross_checks(answers: Answers) -> list[str]:
    found: list[str] = []
    if answers.power == "battery-years" and answers.cadence in ("per-second", "realtime"):
        found.append(
            "A small battery for a year or more cannot pay for a message every second or an "
            "open connection: renegotiate the rate or the power budget before choosing a chip."
        )
    if answers.power == "harvest" and answers.cadence != "hourly":
        found.append(
            "Harvested energy pays for sparse, small beacons only: renegotiate the rate, "
            "or add a battery."
        )
    return found


def recommend(answers: Answers) -> Recommendation:
    """Turn five answers into a radio, its reasons, trade-offs and security needs."""
    candidates = tuple(_RADIO[k] for k in _CANDIDATES[answers.range])
    first = candidates[0]
    radio = _pick(candidates, answers)
    reach = _REACH_WHY[answers.range]
    if radio is not first:
        reach += f" It points to {first.name} first; {radio.name} also reaches."
    reasons = [Reason("range", answers.range, reach)]
    conflicts: list[str] = []
    caveats: list[str] = []
    for key in _TESTED:
        answer = answers.of(key)
        text = _fit_text(radio, key, answer)
        if radio is not first and first.fit(answer) is not Fit.OK:
            why_not = (
                _ruled_out(first, key, answer)
                if first.fit(answer) is Fit.OUT
                else f"{first.name} is only marginal here"
            )
            text = f"{why_not[0].upper()}{why_not[1:]}; {text[0].lower()}{text[1:]}"
        reasons.append(Reason(key, answer, text))
        fit = radio.fit(answer)
        if fit is Fit.OUT:
            conflicts.append(
                f"Question {question(key).number} ({answer}) rules out {radio.name}, "
                "the radio the reach calls for: renegotiate one of the two answers."
            )
        elif fit is Fit.MARGINAL:
            caveats.append(radio.caveat(answer))
    conflicts.extend(_cross_checks(answers))

    security = _security(answers.security)
    if answers.security == "consumer":
        sec_text = "Leaves the radio alone; no secure element needed."
    else:
        sec_text = (
            f"Leaves the radio alone; adds a secure element ({_SECURE_ELEMENT_COST} of BOM) "
            "and what comes with it."
        )
    reasons.append(Reason("security", answers.security, sec_text))

    tradeoffs = [*radio.tradeoffs, *caveats]
    if answers.security != "consumer" and answers.budget == "under-5":
        tradeoffs.append(
            f"The secure element's {_SECURE_ELEMENT_COST} comes on top of the radio budget."
        )
    return Recommendation(
        radio=radio,
        answers=answers,
        reasons=tuple(reasons),
        tradeoffs=tuple(tradeoffs),
        security=security,
        conflicts=tuple(conflicts),
    )
