"""The classifier service: reports stream → rule-based classification → signals stream."""

from __future__ import annotations

import logging

from faststream import FastStream

from services.classifier.classify import Classifier
from services.classifier.gazetteer import builtin_gazetteer
from services.classifier.rules import load_rule_sets
from shared.logs import bound_report, get_logger
from shared.messages import Report, Signal
from shared.service import Service
from shared.settings import Settings

log = get_logger(__name__)
_log_level = logging.getLogger(__name__)  # structlog renders through it (shared.logs)


def build(settings: Settings) -> tuple[FastStream, Service]:
    """The classifier app with the built-in rule set and gazetteer."""
    service = Service(settings, "classifier")
    service.publisher(settings.signals_stream, Signal)  # documents the contract
    classifier = Classifier(tuple(load_rule_sets(settings.rules)), builtin_gazetteer())

    async def classify_reports(reports: list[Report]) -> None:
        signals = classifier.classify_batch(reports)
        await service.publish_many(settings.signals_stream, signals)
        if not _log_level.isEnabledFor(logging.INFO):  # skip structlog's processors when off
            return
        for signal in signals:
            with bound_report(signal.id):
                log.info(
                    "report classified",
                    label=signal.label,
                    severity=signal.severity.name.lower(),
                    escalation=signal.escalation,
                    ceasefire=signal.ceasefire,
                    countries=list(signal.countries),
                )

    service.consume_batches(
        service.input_stream,
        Report,
        classify_reports,
        description="Normalised reports from ingest, classified into signals in batches.",
    )
    return service.app(), service
