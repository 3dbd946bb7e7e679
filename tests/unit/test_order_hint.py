"""The order hint: the checkout's notification_url names the order, the gateway keeps it,
ingest stores it only when it looks like an id (it is unsigned)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from payrelay.services.checkout import notification_url_for
from payrelay.services.ingest import order_hint
from payrelay.simulator.notifier import NotificationStyle, notification_target

ORDER = "3f2c9a0e-5b10-40ca-ac0c-8292fe38b86f"


def test_the_notification_url_carries_the_order_and_keeps_its_own_query():
    url = notification_url_for("https://shop.example/webhooks/mercadopago?source=mp", ORDER)
    assert url.startswith("https://shop.example/webhooks/mercadopago?")
    assert parse_qs(urlsplit(url).query) == {"source": ["mp"], "order_id": [ORDER]}


def test_an_order_id_already_in_the_url_is_replaced_not_repeated():
    url = notification_url_for("http://h/wh?order_id=stale", ORDER)
    assert parse_qs(urlsplit(url).query) == {"order_id": [ORDER]}


def test_the_gateway_appends_its_parameters_after_the_hint():
    """As MercadoPago documents: the configured URL's query string, then data.id & type."""
    base = notification_url_for("http://h/webhooks/mercadopago", ORDER)
    for style, extra in ((NotificationStyle.WEBHOOK, {"data.id": ["123"], "type": ["payment"]}),
                         (NotificationStyle.IPN, {"topic": ["payment"], "id": ["123"]})):
        query = parse_qs(urlsplit(notification_target(base, "123", style)).query)
        assert query == {"order_id": [ORDER], **extra}


def test_only_a_well_formed_hint_is_kept():
    assert order_hint({"order_id": ORDER, "data.id": "1"}) == ORDER
    assert order_hint({"data.id": "1"}) is None
    for bad in ("", "x" * 65, "a b", "<script>", "../../etc"):
        assert order_hint({"order_id": bad}) is None, bad
