"""payrelay's errors, as a tree; each says what the user can do about it.

    PayrelayError
    ├── DomainError
    │   ├── InvalidMoney            bad amount or currency in input
    │   ├── IllegalTransition       a state machine refused a move
    │   ├── InvalidEnvelope         a message that cannot be decoded (permanent)
    │   ├── NotFound                no such order (or checkout)
    │   └── Conflict                the request contradicts what is stored
    ├── NotificationRejected        webhook refused (bad signature, malformed, too large)
    ├── GatewayError                the payment gateway failed
    │   ├── GatewayUnavailable      transient: timeout, 5xx, connection refused; retry later
    │   ├── GatewayRejected         permanent 4xx answer (bad token, unknown payment)
    │   └── MalformedResource       the gateway answered something payrelay cannot read
    ├── TransportUnavailable        the broker cannot be reached; retry later
    ├── StorageUnavailable          the database cannot be reached; retry later
    │   ├── StorageRefused          it answers but refuses the URL's database, role or password
    │   └── SchemaBehind            its schema is older than this code: run `payrelay migrate`
    ├── UnstorableRecord            the database refused a row's values; retrying will not help
    ├── ConcurrentUpdate            another transaction changed the row first; retry later
    └── InjectedFault               a named fault-injection point fired (tests, chaos runs)
"""

from __future__ import annotations


class PayrelayError(Exception):
    """Root of payrelay's own errors."""


class DomainError(PayrelayError):
    pass


class InvalidMoney(DomainError, ValueError):
    pass


class IllegalTransition(DomainError):
    def __init__(self, machine: str, current: str, target: str) -> None:
        super().__init__(f"{machine} cannot move from {current} to {target}")
        self.machine = machine
        self.current = current
        self.target = target


class InvalidEnvelope(DomainError, ValueError):
    pass


class NotFound(DomainError, LookupError):
    pass


class Conflict(DomainError):
    pass


class NotificationRejected(PayrelayError):
    """A webhook that payrelay refuses; `status_code` is what the HTTP layer answers."""

    def __init__(self, reason: str, status_code: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


class GatewayError(PayrelayError):
    pass


class GatewayUnavailable(GatewayError):
    pass


class GatewayRejected(GatewayError):
    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class MalformedResource(GatewayError):
    """The answer was not a resource payrelay can read: asking again will not change it."""


class TransportUnavailable(PayrelayError):
    pass


class StorageUnavailable(PayrelayError):
    pass


class StorageRefused(StorageUnavailable):
    """The server answers but will not let payrelay in: no such database, role or password.

    Still a StorageUnavailable, so a running worker keeps retrying (a password being rotated
    heals by itself); a command starting up exits 2 instead, as a person has to fix the URL.
    """


class SchemaBehind(StorageUnavailable):
    """The database is older than this code: run `payrelay migrate`."""


class UnstorableRecord(PayrelayError):
    """The database refused the values of a row (too long, text it cannot hold, a CHECK).

    The input that produced the row is at fault, not the database: writing it again will
    not help. The webhook endpoint answers 400; nothing of the row was stored.
    """


class ConcurrentUpdate(PayrelayError):
    """The row's version is not the one the caller read: another transaction won the race.

    Nothing was written by the statement that raised it. The work must be done again from
    a fresh read (a notification fetched again later, a message redelivered).
    """


class InjectedFault(PayrelayError):
    def __init__(self, point: str) -> None:
        super().__init__(f"injected fault at {point}")
        self.point = point
