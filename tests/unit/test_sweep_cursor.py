"""The sweep's cursor and watermark rules, as plain data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from payrelay.domain.money import Money
from payrelay.domain.payment import PaymentSnapshot, PaymentStatus
from payrelay.ports import PaymentPage
from payrelay.services.sweep import SweepCursor, safe_watermark

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def updated_at(*offsets_ms: int) -> list[PaymentSnapshot]:
    return [
        PaymentSnapshot(
            payment_id=str(n), provider="mercadopago", order_id="o", status=PaymentStatus.PENDING,
            status_detail=None, amount=Money.parse("1.00", "BRL"),
            amount_refunded=Money.parse("0", "BRL"), date_created=T0,
            date_approved=None, date_last_updated=T0 + timedelta(milliseconds=ms),
        )
        for n, ms in enumerate(offsets_ms)
    ]


def ms(n: int) -> datetime:
    return T0 + timedelta(milliseconds=n)


def test_the_next_page_starts_at_the_last_update_read_skipping_its_ties() -> None:
    cursor = SweepCursor(T0).after(PaymentPage(updated_at(1, 2, 2), total=10, offset=0))
    assert cursor == SweepCursor(ms(2), skip=2)


def test_ties_spanning_whole_pages_add_up() -> None:
    cursor = SweepCursor(ms(2), skip=2).after(PaymentPage(updated_at(2, 2), total=9, offset=2))
    assert cursor == SweepCursor(ms(2), skip=4)


def test_the_page_that_reaches_the_total_is_the_last() -> None:
    cursor = SweepCursor(ms(2), skip=1).after(PaymentPage(updated_at(3, 4), total=3, offset=1))
    assert cursor == SweepCursor(ms(4), skip=1, done=True)
    assert SweepCursor(T0).after(PaymentPage([], total=0, offset=0)).done


def test_an_empty_page_after_ties_reads_that_instant_again() -> None:
    # One of the two payments skipped at ms(2) was updated meanwhile: what followed it moved
    # up into the skipped places, so the instant is read again from its start.
    cursor = SweepCursor(ms(2), skip=2).after(PaymentPage([], total=1, offset=2))
    assert cursor == SweepCursor(ms(2))


def test_the_watermark_keeps_the_overlap_behind_the_run_but_not_behind_a_backlog() -> None:
    started, overlap = ms(600_000), timedelta(minutes=2)
    assert safe_watermark(started, started=started, overlap=overlap) == started - overlap
    assert safe_watermark(ms(5), started=started, overlap=overlap) == ms(5)


def test_unreadable_results_move_the_cursor_like_the_others() -> None:
    page = PaymentPage(updated_at(1), total=3, offset=0, unreadable=[("77", ms(5)), ("78", ms(5))])
    assert SweepCursor(T0).after(page) == SweepCursor(ms(5), skip=2, done=True)
    only_odd = PaymentPage([], total=2, offset=0, unreadable=[("77", ms(3))])
    assert SweepCursor(T0).after(only_odd) == SweepCursor(ms(3), skip=1, done=False)
