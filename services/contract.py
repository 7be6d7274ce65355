"""The stream contracts of all three services as one AsyncAPI document, generated from code."""

from __future__ import annotations

import json

from faststream.specification import AsyncAPI

from services.classifier.app import build as build_classifier
from services.ingest.app import build as build_ingest
from services.notifier.app import build as build_notifier
from shared.settings import Settings

DESCRIPTION = """Flashpoint's streams. Outside programs publish raw reports to the inbox stream
with XADD, either as flat field/value pairs or as one `__data__` field holding JSON; ingest
normalises and deduplicates them onto the reports stream, the classifier turns reports into
signals, and the notifier delivers alerts and records each delivery. Entries no service could
process land on the dead-letter stream with the reason."""


def asyncapi_document() -> str:
    """The AsyncAPI 3.0 document for the default stream names, as indented JSON.

    The environment is ignored on purpose: the document is the contract, and a configured
    Redis URL may hold a password.
    """
    settings = Settings.model_construct()
    brokers = [
        build(settings)[1].broker for build in (build_ingest, build_classifier, build_notifier)
    ]
    spec = AsyncAPI(
        *brokers, title="Flashpoint streams", version="1.0.0", description=DESCRIPTION
    ).to_specification()
    return json.dumps(json.loads(spec.to_json()), indent=2, sort_keys=True) + "\n"
