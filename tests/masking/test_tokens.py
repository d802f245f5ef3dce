from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tether.errors import MaskingError
from tether.masking.tokens import check_domain, domain_tag, token_pattern, tokenise

KEY = b"k" * 32


@given(st.text(min_size=1, max_size=40))
def test_same_value_in_two_domains_gives_unrelated_tokens(value: str) -> None:
    a = tokenise(KEY, "tool-telemetry", value)
    b = tokenise(KEY, "support-tickets", value)
    assert a != b
    assert a[-20:] != b[-20:]
    assert re.match(token_pattern("tool-telemetry"), a)
    assert not re.match(token_pattern("tool-telemetry"), b)
    assert tokenise(KEY, "tool-telemetry", value) == a


def test_domain_tags_differ_and_domains_are_checked() -> None:
    assert domain_tag("tool-telemetry") != domain_tag("support-tickets")
    assert check_domain("billing") == "billing"
    with pytest.raises(MaskingError, match="lowercase name"):
        check_domain("Tool Telemetry")
