from __future__ import annotations

import pytest

from tether.masking.errors import THREE_QUESTIONS, RubricError, UnclassifiedColumnError
from tether.masking.rubric import Bucket, Rubric, parse_rubric


def _one(column: str) -> str:
    return f"rubric: t\nversion: 1\ncolumns:\n  c: {column}\n"


def test_packaged_rubric_covers_every_bucket(rubric: Rubric) -> None:
    assert rubric.label == "tool-telemetry@v1"
    assert {r.bucket for r in rubric.columns.values()} == set(Bucket)
    assert rubric.columns["gps_lat"].treatment == "generalise:gps_grid"
    assert rubric.columns["notes"].params()["entities"]
    assert len(rubric.sha256) == 64


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ("{bucket: secret}", "columns.c.bucket: expected one of"),
        ("{bucket: behavioural}", "columns.c.reason: a kept column needs a written reason"),
        ("{bucket: sensitive, generalise: gps_grid, step: 0.001}", "too identifying"),
        ("{bucket: sensitive, generalise: blur}", "columns.c.generalise: expected one of"),
        ("{bucket: sensitive, generalise: hour, width: 5}", "only age_bin and birth_date_bin"),
        ("{bucket: direct_identifier, generalise: hour}", "do not apply to bucket"),
        ("{bucket: free_text, entities: [SECRET]}", "columns.c.entities: unknown ['SECRET']"),
        ("{bucket: free_text, threshold: 2}", "columns.c.threshold"),
        ("{bucket: sensitive, generalise: age_bin, width: 2}", "at least 5"),
    ],
)
def test_rule_errors_name_the_key(column: str, message: str) -> None:
    with pytest.raises(RubricError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_rubric(_one(column))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a list", "expected a mapping"),
        ("rubric: t\nversion: 0\ncolumns: {c: {bucket: quasi_identifier}}", "positive integer"),
        ("rubric: t\nversion: 1\ncolumns: {}", "'columns' must map"),
        ("rubric: t\nversion: 1\ncolums: {}\ncolumns: {c: {bucket: free_text}}", "colums"),
        ("rubric: [\n", "not valid YAML"),
    ],
)
def test_document_errors(text: str, message: str) -> None:
    with pytest.raises(RubricError, match=message):
        parse_rubric(text)


def test_unclassified_columns_fail_closed_with_the_three_questions(rubric: Rubric) -> None:
    with pytest.raises(UnclassifiedColumnError) as info:
        rubric.require_classified(["operator_email", "shoe_size", "home_wifi"])
    text = str(info.value)
    assert "'shoe_size', 'home_wifi'" in text
    assert THREE_QUESTIONS in text
    assert info.value.columns == ["shoe_size", "home_wifi"]
