"""entrypoints/logs.py: every stdlib line becomes a structured one, with a level and the ids
services pass as `extra`; JSON off a TTY, readable text on one."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from payrelay.domain.retry import FailureKind, RetryDecision
from payrelay.entrypoints.logs import LogFormat, configure_logging
from payrelay.failure_log import FailureLog, payment_fields

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)


def test_a_line_off_a_tty_is_json_with_level_logger_time_and_the_ids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PAYRELAY_LOG_FORMAT", raising=False)
    out = io.StringIO()
    assert configure_logging(logging.INFO, stream=out) is LogFormat.JSON
    logging.getLogger("payrelay.events").info(
        "order paid", extra=payment_fields("o-1", "123", "mercadopago:123"))
    logging.getLogger("payrelay.events").debug("below the level")
    (line,) = out.getvalue().splitlines()
    fields = json.loads(line)
    assert fields["event"] == "order paid" and fields["level"] == "info"
    assert fields["logger"] == "payrelay.events" and fields["timestamp"].startswith("20")
    assert (fields["order_id"], fields["payment_id"], fields["correlation_id"]) == (
        "o-1", "123", "mercadopago:123")


def test_a_tty_gets_console_text_and_the_environment_can_choose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PAYRELAY_LOG_FORMAT", raising=False)
    out = _Tty()
    assert configure_logging(stream=out) is LogFormat.CONSOLE
    logging.getLogger("payrelay.x").warning("held", extra=payment_fields("o-2", None))
    text = out.getvalue()
    assert "held" in text and "warning" in text and "order_id=o-2" in text
    assert "payment_id" not in text  # a None id is left out on a terminal
    monkeypatch.setenv("PAYRELAY_LOG_FORMAT", "json")
    assert configure_logging(stream=_Tty()) is LogFormat.JSON
    monkeypatch.setenv("PAYRELAY_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="json or console"):
        configure_logging(stream=out)


def test_the_level_comes_from_the_command_unless_the_environment_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PAYRELAY_LOG_FORMAT", "json")
    monkeypatch.delenv("PAYRELAY_LOG_LEVEL", raising=False)
    configure_logging("error", stream=io.StringIO())
    assert logging.getLogger().level == logging.ERROR
    monkeypatch.setenv("PAYRELAY_LOG_LEVEL", "debug")
    configure_logging("error", stream=io.StringIO())
    assert logging.getLogger().level == logging.DEBUG
    # Configured twice, one handler: the second replaced the first.
    assert [h.get_name() for h in logging.getLogger().handlers].count("payrelay") == 1


def test_failure_lines_are_structured_warnings_and_giving_up_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PAYRELAY_LOG_FORMAT", "json")
    out = io.StringIO()
    configure_logging(stream=out)
    failures = FailureLog(lambda: NOW)
    retry = RetryDecision(retry_at=NOW + timedelta(seconds=2), spends_attempt=False)
    failures.failed("refunder", kind=FailureKind.UNAVAILABLE, order_id="o-1", payment_id="7",
                    error="GatewayUnavailable: HTTP 503", decision=retry,
                    correlation_id="mercadopago:7")
    failures.failed("refunder", kind=FailureKind.PERMANENT, order_id="o-1", payment_id="7",
                    error="GatewayRejected: HTTP 400",
                    decision=RetryDecision(None, spends_attempt=True, gave_up="failed: 5 times"))
    warning, error = (json.loads(line) for line in out.getvalue().splitlines())
    assert warning["level"] == "warning" and warning["retry_in_seconds"] == 2.0
    assert warning["correlation_id"] == "mercadopago:7" and warning["kind"] == "unavailable"
    assert error["level"] == "error" and error["reason"] == "failed: 5 times"
    assert error["order_id"] == "o-1" and error["payment_id"] == "7"
