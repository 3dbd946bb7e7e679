"""`payrelay chaos`: the production roles as real OS processes, faults on a seeded schedule,
customers paying, then an invariant checker over what every party recorded.

The harness is the adversary and the judge, never a participant: it starts payrelay as
`payrelay serve` processes and the gateway simulator as `payrelay simulator` (a process of
its own, never killed, whose ledger is the ground truth), reaches the gateway only over its
HTTP API, as a client would, and reads both databases through the storage adapters.

    topology.py   the processes, each restartable, and where state and messages live
    drivers.py    customers paying (twice, late, after a rejection, a cancellation...)
    schedule.py   the seeded fault schedule, and the log of every fault injected
    injectors.py  what each fault does (kill -9, pg_terminate_backend, poison, ...)
    netproxy.py   the TCP proxies between payrelay and its servers: stall, slow, cut
    skew.py       a process on a skewed clock (libfaketime)
    facts.py      what the gateway and both databases recorded, read once
    checker.py    the invariants, as counts of violations
    report.py     the one-line summary, the table, the JSON
    run.py        one run, from start to verdict

Importing the package is cheap (the options only): `payrelay.chaos.run` brings the rest.
"""

from payrelay.chaos.options import ChaosOptions, FaultKind

__all__ = ["ChaosOptions", "FaultKind"]
