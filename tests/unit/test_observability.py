"""The shared Logger writes one JSON object per line; its message is text, or the object it was given."""

from __future__ import annotations

import io
import json
import logging

import pytest

from clinicpay.observability import logger


@pytest.mark.parametrize(("message", "logged"), [
    ("message sent", "message sent"),
    ('{"kind": "receipt", "sent": 1}', {"kind": "receipt", "sent": 1}),  # as Powertools has always done
    ("[1, 2]", [1, 2]),
    ("[not json", "[not json"),
    ("12", "12"),  # a sentence that happens to be a number stays text
])
def test_a_message_is_logged_as_text_unless_it_is_a_json_object_or_list(message: str, logged: object) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    try:
        logger.warning(message, extra={"clinic_id": "cl_1"})
    finally:
        logger.handlers.remove(handler)
    line = json.loads(stream.getvalue())
    assert line["message"] == logged and line["clinic_id"] == "cl_1"
