"""A pool with every connection busy (a stalled server) is an outage to wait out, not a bug:
the orders API answered 500 for it in a chaos run (`QueuePool limit ... reached`)."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import TimeoutError as PoolTimeout

from payrelay.adapters.storage.database import _translated
from payrelay.domain.errors import StorageUnavailable


async def test_no_free_connection_is_storage_unavailable() -> None:
    with pytest.raises(StorageUnavailable, match="no connection free"):
        async with _translated():
            raise PoolTimeout("QueuePool limit of size 10 overflow 10 reached")
