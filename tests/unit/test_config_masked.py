"""`payrelay config` prints settings with every credential hidden, in every URL setting."""

from __future__ import annotations

import pytest

from payrelay.config import Settings, mask_url

PASSWORD = "pw-d0-not-print"
URL_FIELDS = sorted(name for name in Settings.model_fields if name.endswith("_url"))
URLS = {
    "payments_database_url": f"postgresql+asyncpg://payrelay:{PASSWORD}@db:5432/payments",
    "orders_database_url": f"postgresql+asyncpg://orders:{PASSWORD}@db/orders"
                           f"?sslpassword={PASSWORD}",
    "broker_url": f"amqp://relay:{PASSWORD}@rabbit:5672/vhost",
    "gateway_base_url": f"https://shop:{PASSWORD}@api.gateway.example",
    "public_url": f"https://{PASSWORD}@pay.shop.example",  # a user alone may be a token
    "payments_url": f"http://svc:{PASSWORD}@payments.internal:8000/?access_token={PASSWORD}",
}


def test_every_url_setting_is_covered_here():
    # A URL setting added later must join URLS, so this test keeps hiding its password.
    assert sorted(URLS) == URL_FIELDS


def test_masked_hides_the_password_in_every_url_setting():
    shown = Settings(**URLS, admin_token=PASSWORD, gateway_access_token=PASSWORD,
                     webhook_secrets=PASSWORD).masked()
    assert PASSWORD not in repr(shown)
    assert shown["payments_database_url"] == "postgresql+asyncpg://payrelay:****@db:5432/payments"
    assert shown["broker_url"] == "amqp://relay:****@rabbit:5672/vhost"
    assert shown["gateway_base_url"] == "https://shop:****@api.gateway.example"
    assert shown["public_url"] == "https://****@pay.shop.example"
    assert shown["payments_url"] == "http://svc:****@payments.internal:8000/?access_token=****"
    assert shown["admin_token"] == shown["gateway_access_token"] == "****"


def test_urls_without_credentials_and_unset_secrets_print_as_they_are():
    shown = Settings(payments_database_url="sqlite+aiosqlite:///var/payments.db").masked()
    assert shown["payments_database_url"] == "sqlite+aiosqlite:///var/payments.db"
    assert shown["gateway_base_url"] == "http://127.0.0.1:8089"
    assert shown["broker_url"] == "local"
    assert shown["admin_token"] == ""


def test_a_secret_that_is_not_a_url_setting_is_hidden_whole_even_if_it_looks_like_one():
    shown = Settings(admin_token=f"https://{PASSWORD}").masked()
    assert shown["admin_token"] == "****"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:p@ss/w@h:5/d", "postgresql://u:****@h:5/d"),  # unescaped @ and /
        ("amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:****@127.0.0.1:5672/"),
        ("https://h/x?token=t&page=2#top", "https://h/x?token=****&page=2#top"),
        ("postgresql://h/d?password=p&sslmode=require",
         "postgresql://h/d?password=****&sslmode=require"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("local", "local"),
    ],
)
def test_mask_url(url: str, shown: str):
    assert mask_url(url) == shown
