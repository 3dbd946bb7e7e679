"""GET /v1/payments/search the way MercadoPago's reference describes it.

What the reference says, and the simulator does:
- `range` names the date the interval applies to: date_created (the default),
  date_last_updated or date_approved; `begin_date` and `end_date` bound it, both inclusive.
  A date is absolute ISO 8601 ("2024-08-23", "2024-08-23T10:00:00.000-04:00") or relative
  to now ("NOW", "NOW-30DAYS", "NOW-1MONTH"); they default to NOW-3MONTHS and NOW.
- `sort` orders by date_created, date_last_updated, date_approved or id; `criteria` is
  asc or desc. `limit` (30 by default) and `offset` page the result.
- The answer is {"paging": {"total", "limit", "offset"}, "results": [...]}; a refusal is a
  400 with MercadoPago's cause code: 1 bad parameter, 1000 too many rows, 1001 bad date,
  1003 bad sort, 1004 bad criteria.

The simulator's own choices, where the reference is silent: without `sort`, oldest
date_created first (ties by id); a payment without the sorted date (never approved) comes
last either way; a date without an offset is UTC; over HTTP `limit` may not exceed 1000
(MercadoPago documents error 1000, not its threshold). money_release_date, which the
reference also lists, is refused: the simulator releases no money.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from payrelay.simulator.errors import BadRequest
from payrelay.simulator.records import Payment

DEFAULT_LIMIT = 30
MAX_LIMIT = 1000

PARAMS_ERROR, TOO_MANY_ROWS, BAD_DATE, BAD_SORT, BAD_CRITERIA = 1, 1000, 1001, 1003, 1004

_RELATIVE = re.compile(r"^NOW(?:-(\d+)(DAYS?|MONTHS?))?$")


class DateField(StrEnum):
    """The dates a search interval (`range`) or an ordering (`sort`) may use."""

    DATE_CREATED = "date_created"
    DATE_LAST_UPDATED = "date_last_updated"
    DATE_APPROVED = "date_approved"


class Criteria(StrEnum):
    ASC = "asc"
    DESC = "desc"


SORT_BY_ID = "id"


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A search, as its query string says it; dates stay unresolved until `now` is known."""

    external_reference: str | None = None
    range: DateField = DateField.DATE_CREATED
    begin_date: datetime | str = "NOW-3MONTHS"
    end_date: datetime | str = "NOW"
    sort: DateField | str = DateField.DATE_CREATED
    criteria: Criteria = Criteria.ASC
    limit: int = DEFAULT_LIMIT
    offset: int = 0


def query_from_params(params: Mapping[str, str]) -> SearchQuery:
    """Check a search's query string as MercadoPago would (400 with its cause code)."""
    limit = _integer(params, "limit", DEFAULT_LIMIT)
    if limit > MAX_LIMIT:
        raise BadRequest(f"limit must not exceed {MAX_LIMIT}", cause_code=TOO_MANY_ROWS)
    return SearchQuery(
        external_reference=params.get("external_reference"),
        range=parse_range(params.get("range", DateField.DATE_CREATED)),
        begin_date=params.get("begin_date", "NOW-3MONTHS"),
        end_date=params.get("end_date", "NOW"),
        sort=parse_sort(params.get("sort", DateField.DATE_CREATED)),
        criteria=parse_criteria(params.get("criteria", Criteria.ASC)),
        limit=limit,
        offset=_integer(params, "offset", 0),
    )


def parse_range(value: str) -> DateField:
    try:
        return DateField(value)
    except ValueError as exc:
        choices = ", ".join(DateField)
        raise BadRequest(f"range must be one of {choices}", cause_code=PARAMS_ERROR) from exc


def parse_sort(value: str) -> DateField | str:
    if value == SORT_BY_ID:
        return SORT_BY_ID
    try:
        return DateField(value)
    except ValueError as exc:
        raise BadRequest(f"Invalid sort value: {value}", cause_code=BAD_SORT) from exc


def parse_criteria(value: str) -> Criteria:
    try:
        return Criteria(value)
    except ValueError as exc:
        raise BadRequest(f"Invalid criteria value: {value}", cause_code=BAD_CRITERIA) from exc


def resolve_date(value: datetime | str, now: datetime) -> datetime:
    """An absolute or NOW-relative date as an aware datetime."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = value.strip().upper()
        relative = _RELATIVE.match(text)
        if relative is not None:
            return _before(now, int(relative[1] or 0), relative[2] or "DAYS")
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise BadRequest(
                f"Date format must be yyyy-MM-dd'T'HH:mm:ss.SSSZ: {value}", cause_code=BAD_DATE
            ) from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def run_search(
    payments: Iterable[Payment], query: SearchQuery, *, now: datetime
) -> tuple[int, list[Payment]]:
    """The total matching `query`, and the page of them it asks for."""
    if query.limit < 0 or query.offset < 0:
        raise BadRequest("limit and offset must not be negative", cause_code=PARAMS_ERROR)
    begin, end = resolve_date(query.begin_date, now), resolve_date(query.end_date, now)
    found = [
        p
        for p in payments
        if query.external_reference in (None, p.preference.external_reference)
        and _within(_date(p, query.range), begin, end)
    ]
    ordered = _ordered(found, query.sort, descending=query.criteria is Criteria.DESC)
    return len(ordered), ordered[query.offset : query.offset + query.limit]


def _ordered(found: list[Payment], sort: DateField | str, *, descending: bool) -> list[Payment]:
    if sort == SORT_BY_ID:
        return sorted(found, key=lambda p: p.id, reverse=descending)
    field = DateField(sort)
    dated = [p for p in found if _date(p, field) is not None]
    undated = sorted((p for p in found if _date(p, field) is None), key=lambda p: p.id)
    dated.sort(key=lambda p: (_date(p, field), p.id), reverse=descending)
    return dated + undated


def _date(payment: Payment, field: DateField) -> datetime | None:
    if field is DateField.DATE_APPROVED:
        return payment.date_approved
    if field is DateField.DATE_LAST_UPDATED:
        return payment.date_last_updated
    return payment.date_created


def _within(moment: datetime | None, begin: datetime, end: datetime) -> bool:
    return moment is not None and begin <= moment <= end


def _before(now: datetime, count: int, unit: str) -> datetime:
    if unit.startswith("DAY"):
        return now - timedelta(days=count)
    months = now.year * 12 + now.month - 1 - count
    year, month = divmod(months, 12)
    day = min(now.day, calendar.monthrange(year, month + 1)[1])
    return now.replace(year=year, month=month + 1, day=day)


def _integer(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadRequest(f"{name} must be an integer", cause_code=PARAMS_ERROR) from exc
    if value < 0:
        raise BadRequest(f"{name} must not be negative", cause_code=PARAMS_ERROR)
    return value
