"""Body schemas behind their quick checks validate exactly as fastjsonschema alone."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import fastjsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.classes import load_catalog
from tether.classes.quickcheck import with_quick_check

_NAMES = ["a", "b", "c", "d"]
_TYPES = ["object", "array", "string", "integer", "number", "boolean", "null"]
_scalars = (
    st.integers(-300, 300)
    | st.floats(allow_nan=True)
    | st.sampled_from([0.0, 1.0, 2.0, -1.0, 255.0, 1e300])
    | st.booleans()
    | st.none()
    | st.text(max_size=4)
    | st.sampled_from(["x", "y", "wifi", ""])
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.sampled_from(_NAMES), inner, max_size=4)
    ),
    max_leaves=10,
)


@st.composite
def _schemas(draw: st.DrawFn, depth: int = 0) -> Any:
    """Schemas of the quick checks' subset, now and then with something outside it."""
    kind = draw(st.sampled_from(["any", "enum", "typed", "typed", "typed", "odd"]))
    if kind == "any":
        return {}
    if kind == "enum":
        values = draw(
            st.lists(st.sampled_from(["x", "y", "wifi"]), min_size=1, max_size=3)
            | st.lists(st.integers(-2, 2), min_size=1, max_size=3)
            | st.lists(st.sampled_from([1, "x", True, None, 1.0]), min_size=1, max_size=3)
        )
        return {"enum": values}
    if kind == "odd":
        return draw(
            st.sampled_from(
                [
                    {"type": "string", "pattern": "^x"},
                    {"type": "integer", "default": 3},
                    {"type": "object", "additionalProperties": False},
                    {"minimum": 2},
                    {"type": "integer", "exclusiveMinimum": 0},
                ]
            )
        )
    kinds = draw(st.lists(st.sampled_from(_TYPES), min_size=1, max_size=2, unique=True))
    schema: dict[str, Any] = {"type": kinds[0] if len(kinds) == 1 else kinds}
    if draw(st.booleans()):
        schema["description"] = "annotated"
    if "integer" in kinds or "number" in kinds:
        for keyword in ("minimum", "maximum"):
            if draw(st.booleans()):
                schema[keyword] = draw(st.integers(-5, 260) | st.floats(-5, 260))
    if "string" in kinds:
        for keyword in ("minLength", "maxLength"):
            if draw(st.booleans()):
                schema[keyword] = draw(st.integers(0, 4))
    if "array" in kinds and depth < 2:
        if draw(st.booleans()):
            schema["items"] = draw(_schemas(depth + 1))
        for keyword in ("minItems", "maxItems"):
            if draw(st.booleans()):
                schema[keyword] = draw(st.integers(0, 4))
    if "object" in kinds and depth < 2:
        names = draw(st.lists(st.sampled_from(_NAMES), max_size=4, unique=True))
        schema["properties"] = {n: draw(_schemas(depth + 1)) for n in names}
        schema["required"] = draw(st.lists(st.sampled_from(_NAMES), max_size=3, unique=True))
    return schema


def _body(draw: st.DrawFn, schema: Any) -> Any:
    """A value for ``schema``: made to fit most of the time, anything otherwise."""
    if draw(st.integers(0, 9)) == 9 or not isinstance(schema, dict):
        return draw(_values)
    if "enum" in schema:
        return draw(st.sampled_from(schema["enum"]))
    kinds = schema.get("type", _TYPES)
    kind = draw(st.sampled_from([kinds] if isinstance(kinds, str) else kinds))
    low, high = schema.get("minimum", -300), schema.get("maximum", 300)
    if kind == "object":
        properties = schema.get("properties", {})
        names = set(schema.get("required", [])) | set(draw(st.sets(st.sampled_from(_NAMES))))
        return {n: _body(draw, properties.get(n, {})) for n in sorted(names)}
    if kind == "array":
        least = schema.get("minItems", 0)
        size = draw(st.integers(least, max(schema.get("maxItems", 3), least)))
        return [_body(draw, schema.get("items", {})) for _ in range(size)]
    if kind == "string":
        return draw(st.text(max_size=5))
    low, high = min(low, high), max(low, high)
    if kind == "integer":
        return draw(st.integers(int(low) - 1, int(high) + 1))
    if kind == "number":
        return draw(st.floats(low - 1, high + 1) | st.integers(int(low) - 1, int(high) + 1))
    if kind == "boolean":
        return draw(st.booleans())
    return None


def _outcome(validate: Callable[[Any], Any], body: Any) -> tuple[str, Any]:
    try:
        result = validate(body)
    except fastjsonschema.JsonSchemaException as exc:
        return ("refused", str(exc))
    return ("accepted", result is body)


@settings(max_examples=600, deadline=None)
@given(_schemas(), st.data())
def test_quick_checks_validate_as_fastjsonschema(schema: Any, data: st.DataObject) -> None:
    full = fastjsonschema.compile(schema)
    quick = with_quick_check(schema, full)
    for _ in range(10):
        body = _body(data.draw, schema)
        mine, theirs = copy.deepcopy(body), copy.deepcopy(body)
        assert _outcome(quick, mine) == _outcome(full, theirs)
        assert repr(mine) == repr(theirs)  # neither path changed the body differently


def test_the_shipped_packs_have_quick_checks_where_their_schemas_allow() -> None:
    catalog = load_catalog()
    quick = {
        (runtime.name, event_type)
        for runtime in catalog
        for (event_type, _), validate in runtime.validators.items()
        if validate.__name__ == "validate" and "quick" in validate.__code__.co_filename
    }
    assert ("retail-cart", "health") in quick
    assert ("oral-care-brush", "session") in quick
    assert ("retail-cart", "scan") not in quick  # a pattern: fastjsonschema alone
