"""Advice for people designing a connected product, before any device exists.

``rubric`` holds the five-question wireless rubric as data and a pure function
that turns five answers into a radio recommendation with its reasons and costs.
"""

from __future__ import annotations

from tether.advice.rubric import (
    QUESTIONS,
    RADIOS,
    Answer,
    Answers,
    Fit,
    InvalidAnswerError,
    Question,
    Radio,
    Reason,
    Recommendation,
    question,
    recommend,
)

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
