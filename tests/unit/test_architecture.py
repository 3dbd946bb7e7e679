"""The direction of dependencies: the domain is stdlib-only, services never touch a vendor,
and the layers import each other only inward (entrypoints -> bootstrap -> services/adapters
-> ports -> domain): entrypoints never import an adapter, services never import an adapter
or an entrypoint, adapters never import a service or an entrypoint; the simulator (the
outside world) shares no code with payrelay. The chaos harness (`payrelay/chaos`) is a layer
of its own, beside the entrypoints: it is the adversary and the judge, so it reads both
databases through the storage adapters and publishes poison through the transport adapter,
but it runs payrelay only as processes (no bootstrap, system, config, service or
entrypoint) and reaches the gateway only over HTTP (no simulator import), so that what it
checks against is recorded outside the code under test."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import payrelay

SRC = Path(payrelay.__file__).resolve().parent.parent
PACKAGE = SRC / "payrelay"
DOMAIN_FILES = sorted((PACKAGE / "domain").glob("*.py"))
SERVICE_FILES = sorted((PACKAGE / "services").glob("*.py"))
SIMULATOR_FILES = sorted((PACKAGE / "simulator").rglob("*.py"))
ENTRYPOINT_FILES = sorted((PACKAGE / "entrypoints").rglob("*.py"))
ADAPTER_FILES = sorted((PACKAGE / "adapters").rglob("*.py"))
CHAOS_FILES = sorted((PACKAGE / "chaos").rglob("*.py"))
CONTRACT_FILES = sorted((PACKAGE / "contract").rglob("*.py"))
# Each layer, and the payrelay packages it must not import directly.
OUTER = ("payrelay.bootstrap", "payrelay.system", "payrelay.config")
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "entrypoints": ("payrelay.adapters",),
    "services": ("payrelay.adapters", "payrelay.entrypoints", *OUTER),
    "adapters": ("payrelay.services", "payrelay.entrypoints", *OUTER),
    "ports": ("payrelay.adapters", "payrelay.services", "payrelay.entrypoints", *OUTER),
    "system": ("payrelay.adapters", "payrelay.entrypoints"),
    "chaos": ("payrelay.services", "payrelay.entrypoints", "payrelay.simulator", *OUTER),
    # The published contract describes the code; it reads names and shapes, runs nothing.
    "contract": ("payrelay.services", "payrelay.entrypoints", "payrelay.bootstrap"),
}
LAYER_FILES = [
    *(("entrypoints", p) for p in ENTRYPOINT_FILES),
    *(("services", p) for p in SERVICE_FILES),
    *(("adapters", p) for p in ADAPTER_FILES),
    *(("ports", p) for p in sorted((PACKAGE / "ports").glob("*.py"))),
    ("system", PACKAGE / "system.py"),
    *(("chaos", p) for p in CHAOS_FILES),
    *(("contract", p) for p in CONTRACT_FILES),
]
VENDORS = frozenset(
    {"sqlalchemy", "fastapi", "aio_pika", "aiormq", "httpx", "asyncpg", "aiosqlite",
     "opentelemetry", "structlog", "prometheus_client"}
)


def import_statements(source: str, module: str) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(absolute module, names taken from it) for every import anywhere in `source`.

    `module` is the dotted name of the file itself, to resolve relative imports.
    """
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from ((alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = module.split(".")[: -node.level] if node.level else []
            name = ".".join([*base, node.module] if node.module else base)
            yield name, tuple(alias.name for alias in node.names)


def imported_modules(source: str, module: str) -> list[str]:
    return [name for name, _ in import_statements(source, module)]


def module_name(path: Path, root: Path = SRC) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_domain_or_stdlib(name: str) -> bool:
    if name.split(".")[0] in sys.stdlib_module_names:
        return True
    return name == "payrelay.domain" or name.startswith("payrelay.domain.")


def is_outside_payrelay_or_simulator(name: str) -> bool:
    """True for any module but payrelay's own, and for payrelay.simulator's."""
    if name.split(".")[0] != "payrelay":
        return True
    return name == "payrelay.simulator" or name.startswith("payrelay.simulator.")


def forbidden_imports(source: str, module: str, forbidden: tuple[str, ...]) -> list[str]:
    """The modules `source` imports directly that lie in (or are) a `forbidden` package.

    `from payrelay import adapters` imports the package `payrelay.adapters` too.
    """
    found = []
    for name, taken in import_statements(source, module):
        for candidate in (name, *(f"{name}.{t}" for t in taken)):
            if any(candidate == f or candidate.startswith(f"{f}.") for f in forbidden):
                found.append(candidate)
                break
    return sorted(found)


def module_file(name: str, root: Path = SRC) -> Path | None:
    """The source file of a payrelay module, or None for anything outside payrelay."""
    if name.split(".")[0] != "payrelay":
        return None
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def reachable_imports(start: Path, root: Path = SRC) -> dict[str, str]:
    """Every module imported by `start` or, transitively, by payrelay modules it imports.

    Maps each imported name to the payrelay module that imports it, for the failure message.
    """
    seen: dict[str, str] = {}
    todo = [start]
    visited: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in visited:
            continue
        visited.add(path)
        importer = module_name(path, root)
        for name, taken in import_statements(path.read_text(), importer):
            seen.setdefault(name, importer)
            # `from payrelay.x import y` may name a submodule y: follow both.
            for candidate in (name, *(f"{name}.{t}" for t in taken)):
                found = module_file(candidate, root)
                if found is not None:
                    todo.append(found)
    return seen


def test_the_files_under_test_exist() -> None:
    names = {p.name for p in DOMAIN_FILES}
    assert {"money.py", "payment.py", "order.py", "events.py", "errors.py"} <= names
    assert {"process.py", "consume.py", "relay.py"} <= {p.name for p in SERVICE_FILES}
    assert {"state.py", "notifier.py", "signing.py"} <= {p.name for p in SIMULATOR_FILES}


@pytest.mark.parametrize("path", DOMAIN_FILES, ids=[p.name for p in DOMAIN_FILES])
def test_domain_imports_only_the_standard_library_and_itself(path: Path) -> None:
    names = imported_modules(path.read_text(), module_name(path))
    outside = sorted(name for name in names if not is_domain_or_stdlib(name))
    assert outside == [], f"{path.name} imports {outside}"


@pytest.mark.parametrize("path", SERVICE_FILES, ids=[p.name for p in SERVICE_FILES])
def test_services_never_reach_a_vendor_library(path: Path) -> None:
    imports = reachable_imports(path)
    vendors = sorted(
        f"{name} (via {importer})"
        for name, importer in imports.items()
        if name.split(".")[0] in VENDORS
    )
    assert vendors == [], f"{path.name} depends on {vendors}"


@pytest.mark.parametrize(
    "path", SIMULATOR_FILES, ids=[str(p.relative_to(PACKAGE)) for p in SIMULATOR_FILES]
)
def test_the_simulator_imports_nothing_of_payrelay_but_itself(path: Path) -> None:
    """It plays MercadoPago: a signer, money rule or server shared with payrelay would
    agree with payrelay's own mistakes, and no test would see them."""
    shared = sorted(
        name
        for name, taken in import_statements(path.read_text(), module_name(path))
        if not is_outside_payrelay_or_simulator(name)
        and (name, taken) != ("payrelay", ("simulator",))  # `from payrelay import simulator`
    )
    assert shared == [], f"{path.name} imports {shared}"


MAX_MODULE_LINES, MAX_FUNCTION_LINES = 300, 40
SIZED_FILES = sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def long_functions(source: str) -> list[str]:
    """Functions (nested ones count toward their enclosing function too) over the limit."""
    return sorted(
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    )


@pytest.mark.parametrize(
    "path", SIZED_FILES, ids=[str(p.relative_to(PACKAGE)) for p in SIZED_FILES]
)
def test_modules_and_functions_stay_small(path: Path) -> None:
    """One reason to change per module: 300 lines a module, 40 a function (not migrations)."""
    source = path.read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES, f"{path.name} is too long"
    assert long_functions(source) == [], f"{path.name}: {long_functions(source)}"


def test_the_size_check_flags_a_long_function() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    assert long_functions(f"def f():\n{body}\n") == [f"f ({MAX_FUNCTION_LINES + 1} lines)"]
    assert long_functions("def g():\n    return 1\n") == []


@pytest.mark.parametrize(
    ("layer", "path"), LAYER_FILES,
    ids=[str(p.relative_to(PACKAGE)) for _, p in LAYER_FILES],
)
def test_layers_import_only_inward(layer: str, path: Path) -> None:
    found = forbidden_imports(path.read_text(), module_name(path), FORBIDDEN[layer])
    assert found == [], f"{path.relative_to(PACKAGE)} ({layer}) imports {found}"


def test_the_layer_files_under_test_exist() -> None:
    assert {"cli.py", "payments_api.py", "demo.py"} <= {p.name for p in ENTRYPOINT_FILES}
    assert {"topology.py", "checker.py", "facts.py"} <= {p.name for p in CHAOS_FILES}
    assert {"database.py", "rabbitmq.py"} <= {p.name for p in ADAPTER_FILES}


# --- the checks themselves can fail ----------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "from payrelay.adapters.storage import queries",
        "from payrelay.adapters.storage.database import Database",
        "import payrelay.adapters.transports.rabbitmq",
        "from payrelay import adapters",
        "from ..adapters.storage.migrations import Schema",
        "def f():\n    from payrelay.adapters.storage.dead_letters import SqlDeadLetterBox\n",
        "if TYPE_CHECKING:\n    from payrelay.adapters import x\n",
    ],
)
def test_layer_check_flags_an_entrypoint_importing_an_adapter(source: str) -> None:
    found = forbidden_imports(source, "payrelay.entrypoints.cli", FORBIDDEN["entrypoints"])
    assert found, source


@pytest.mark.parametrize(
    "source",
    [
        "from payrelay.bootstrap import bootstrap",
        "from payrelay.ports import DeadLetterBox",
        "from payrelay.domain.errors import SchemaBehind",
        "from . import http_errors",
        "import payrelay.adaptersfoo",  # only the package itself, not a name that starts alike
    ],
)
def test_layer_check_allows_what_an_entrypoint_may_import(source: str) -> None:
    found = forbidden_imports(source, "payrelay.entrypoints.cli", FORBIDDEN["entrypoints"])
    assert found == [], source


@pytest.mark.parametrize(
    "source",
    [
        "from payrelay.simulator.state import GatewaySimulator",
        "from payrelay.bootstrap import bootstrap",
        "from payrelay.services.relay import OutboxRelay",
        "from payrelay import config",
        "from payrelay.entrypoints.serve import serve",
    ],
)
def test_layer_check_flags_chaos_reaching_into_the_code_under_test(source: str) -> None:
    assert forbidden_imports(source, "payrelay.chaos.checker", FORBIDDEN["chaos"]), source


def test_layer_check_lets_chaos_read_the_databases() -> None:
    source = "from payrelay.adapters.storage import queries\nfrom payrelay.domain import order"
    assert forbidden_imports(source, "payrelay.chaos.facts", FORBIDDEN["chaos"]) == []


@pytest.mark.parametrize(
    "source",
    [
        "import sqlalchemy",
        "from httpx import AsyncClient",
        "import aio_pika.abc",
        "def f():\n    import fastapi\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import asyncpg\n",
        "from payrelay.adapters.storage import tables",
        "from payrelay import ports",
        "from .. import bootstrap",
    ],
)
def test_domain_check_flags_foreign_imports(source: str) -> None:
    names = list(imported_modules(source, "payrelay.domain.money"))
    assert not all(is_domain_or_stdlib(name) for name in names), names


@pytest.mark.parametrize(
    "source",
    [
        "from __future__ import annotations",
        "import json\nfrom decimal import Decimal",
        "from payrelay.domain.errors import InvalidMoney",
        "from .errors import InvalidMoney",
        "from . import errors",
    ],
)
def test_domain_check_allows_stdlib_and_domain(source: str) -> None:
    names = list(imported_modules(source, "payrelay.domain.money"))
    assert all(is_domain_or_stdlib(name) for name in names), names


def test_transitive_check_follows_payrelay_imports(tmp_path: Path) -> None:
    """A service that reaches a vendor two hops away, through `from pkg import module`."""
    services, adapters = tmp_path / "payrelay" / "services", tmp_path / "payrelay" / "adapters"
    services.mkdir(parents=True)
    adapters.mkdir()
    (services / "relay.py").write_text("from payrelay import ports\n")
    (tmp_path / "payrelay" / "ports.py").write_text("from payrelay.adapters import store\n")
    (adapters / "store.py").write_text("import json\nfrom sqlalchemy import select\n")
    imports = reachable_imports(services / "relay.py", tmp_path)
    assert imports["sqlalchemy"] == "payrelay.adapters.store"


@pytest.mark.parametrize(
    "source",
    [
        "from payrelay.domain.signature import signature_header",
        "from payrelay.domain.money import Money",
        "import payrelay.entrypoints.http_server",
        "from payrelay import config",
        "from payrelay.faults import FaultPoint",
        "from .. import bootstrap",
        "from ..adapters.gateways import mercadopago",
        "def f():\n    from payrelay.services import ingest\n",
    ],
)
def test_simulator_check_flags_payrelay_imports(source: str) -> None:
    names = imported_modules(source, "payrelay.simulator.notifier")
    assert not all(is_outside_payrelay_or_simulator(name) for name in names), names


@pytest.mark.parametrize(
    "source",
    [
        "import hmac\nfrom decimal import Decimal",
        "import httpx\nimport simplejson\nfrom fastapi import FastAPI",
        "from payrelay.simulator.errors import BadRequest",
        "from payrelay.simulator import signing",
        "from . import jsonio",
        "from .records import Payment",
    ],
)
def test_simulator_check_allows_itself_and_libraries(source: str) -> None:
    names = imported_modules(source, "payrelay.simulator.notifier")
    assert all(is_outside_payrelay_or_simulator(name) for name in names), names
