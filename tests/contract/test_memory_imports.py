"""The memory adapters stand on the standard library, the domain and the ports alone.

So a service test over them never pulls in a driver, and a fake cannot quietly lean on
the SQL adapter it stands in for.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.unit.test_architecture import PACKAGE, reachable_imports

MEMORY_FILES = sorted((PACKAGE / "adapters" / "memory").glob("*.py"))
ALLOWED = ("payrelay.domain", "payrelay.ports", "payrelay.adapters.memory")


def allowed(name: str) -> bool:
    if name.split(".")[0] in sys.stdlib_module_names:
        return True
    return name in ("payrelay", "payrelay.adapters") or any(
        name == prefix or name.startswith(prefix + ".") for prefix in ALLOWED
    )


@pytest.mark.parametrize("path", MEMORY_FILES, ids=[p.name for p in MEMORY_FILES])
def test_memory_adapters_import_only_stdlib_domain_and_ports(path: Path) -> None:
    outside = sorted(
        f"{name} (via {importer})"
        for name, importer in reachable_imports(path).items()
        if not allowed(name)
    )
    assert outside == [], f"{path.name} depends on {outside}"


def test_the_check_sees_the_memory_adapters() -> None:
    assert {"store.py", "payments.py", "orders.py", "queues.py"} <= {p.name for p in MEMORY_FILES}
