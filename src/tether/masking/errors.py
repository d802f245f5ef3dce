"""Errors of the masking pipeline, all under :class:`tether.errors.MaskingError`.

MaskingError
├── RubricError              the rubric file is malformed or inconsistent
├── UnclassifiedColumnError  the data has a column the rubric does not name
├── KeyMaterialError         salts, token key or mapping key missing or unusable
│   └── SaltRetiredError     the salt asked for is past its overlap window
├── FreeTextError            redacting a free-text column failed
├── SourceError              an input could not be opened or read
└── OutputError              an output or log could not be written, or exists already
"""

from __future__ import annotations

from tether.errors import MaskingError

THREE_QUESTIONS = (
    "1. Does the value, alone, point at one person or one device "
    "(an e-mail, a serial, an employee number)? -> direct_identifier (hashed).\n"
    "2. Otherwise, could it single someone out when combined with other columns, "
    "or is it an id you need to join on (a name, a MAC, a job-site)? -> quasi_identifier "
    "(tokenised per domain).\n"
    "3. Otherwise, is it about a person's place, body, age, time or money "
    "(GPS, birth date, timestamp, address, salary)? -> sensitive (generalised).\n"
    "If all three answers are no: is it typed by a person? -> free_text (NER-redacted); "
    "if not -> behavioural (kept, with a written reason)."
)


class RubricError(MaskingError):
    """The rubric file is malformed, or a column's parameters are wrong."""


class UnclassifiedColumnError(MaskingError):
    """The data has columns the rubric does not assign to a bucket."""

    def __init__(self, columns: list[str], rubric: str) -> None:
        names = ", ".join(repr(c) for c in columns)
        super().__init__(
            f"column(s) {names} are not in rubric {rubric}; nothing was written. "
            f"Classify each one in the rubric by answering the three questions:\n"
            f"{THREE_QUESTIONS}"
        )
        self.columns = columns


class KeyMaterialError(MaskingError):
    """A salt, the token key or the mapping key is missing or unusable."""


class SaltRetiredError(KeyMaterialError):
    """The salt version asked for is past its 30-day overlap and may not be used."""


class FreeTextError(MaskingError):
    """A free-text column could not be redacted; the job stops rather than leak."""


class SourceError(MaskingError):
    """An input could not be opened or read."""


class OutputError(MaskingError):
    """An output, mapping table or decision log could not be written."""


__all__ = [
    "THREE_QUESTIONS",
    "FreeTextError",
    "KeyMaterialError",
    "MaskingError",
    "OutputError",
    "RubricError",
    "SaltRetiredError",
    "SourceError",
    "UnclassifiedColumnError",
]
