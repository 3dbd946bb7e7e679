"""docs/contract/ is what the code generates: a change to the envelope, the topology or the
published headers that is not regenerated fails here, naming the command that fixes it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, Draft202012Validator

from payrelay.adapters.transports.rabbitmq_publish import ATTEMPT_HEADER
from payrelay.adapters.transports.rabbitmq_topology import Topology
from payrelay.contract import REGENERATE, drift, generate_documents, write_documents
from payrelay.domain.events import Envelope
from payrelay.messaging import STANDARD_SUBSCRIPTIONS

DOCS = Path(__file__).resolve().parents[2] / "docs" / "contract"
# AsyncAPI's own JSON Schema of version 3.0.0 (npm @asyncapi/specs 6.11.1,
# schemas/3.0.0-without-$id.json, Apache-2.0), kept here so that the check runs offline.
ASYNCAPI_SPEC = Path(__file__).resolve().parent / "data" / "asyncapi-3.0.0.schema.json"


def test_the_committed_documents_match_the_code() -> None:
    problems = drift(DOCS)
    assert problems == [], f"docs/contract is stale: {problems}; run `{REGENERATE}`"


@dataclasses.dataclass(frozen=True, slots=True)
class EnvelopeWithTracking(Envelope):
    """The envelope as a careless change would leave it: one more field on the wire."""

    tracking_code: str = "TR-1"

    def to_dict(self) -> dict[str, Any]:
        return {**Envelope.to_dict(self), "tracking_code": self.tracking_code}


@dataclasses.dataclass(frozen=True, slots=True)
class EnvelopeWithUnwrittenField(Envelope):
    """A field added to the dataclass that `to_dict` forgot to write."""

    channel: str = "web"


def test_a_field_added_to_the_envelope_fails_the_drift_check() -> None:
    (problem,) = drift(DOCS, EnvelopeWithTracking)
    assert "tracking_code" in problem and REGENERATE in problem
    (problem,) = drift(DOCS, EnvelopeWithUnwrittenField)
    assert "channel" in problem and REGENERATE in problem


def test_an_edited_document_is_drift(tmp_path: Path) -> None:
    write_documents(tmp_path, generate_documents())
    assert drift(tmp_path) == []
    schema = tmp_path / "schemas" / "payment-event.schema.json"
    schema.write_text(schema.read_text().replace('"minimum": 1', '"minimum": 0', 1))
    (tmp_path / "asyncapi.json").unlink()
    assert sorted(drift(tmp_path)) == [
        f"{tmp_path / 'asyncapi.json'} is missing",
        f"{schema} differs from what the code generates",
    ]


def test_the_schemas_are_valid_draft_2020_12_and_carry_valid_examples() -> None:
    for path in sorted((DOCS / "schemas").glob("*.json")):
        schema = json.loads(path.read_text())
        Draft202012Validator.check_schema(schema)
        for example in schema["examples"]:
            assert list(Draft202012Validator(schema).iter_errors(example)) == [], path.name


def resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def test_the_asyncapi_document_resolves_and_describes_the_topology() -> None:
    document = json.loads((DOCS / "asyncapi.json").read_text())
    assert document["asyncapi"] == "3.0.0"
    for ref in refs(document):
        if ref.startswith("#/"):
            resolve(document, ref)  # raises KeyError on a dangling reference
        else:
            assert (DOCS / ref).is_file(), ref
    topology = Topology("", 20, (1, 5, 30, 120, 600))
    for subscription in STANDARD_SUBSCRIPTIONS:
        queue = document["channels"][subscription.queue.replace(".", "-")]
        assert queue["x-payrelay-queue-arguments"] == topology.work_queue_arguments(
            subscription.queue)
        assert queue["bindings"]["amqp"]["queue"]["durable"] is True
    headers = document["components"]["messages"]["paymentEvent"]["headers"]["properties"]
    assert headers[ATTEMPT_HEADER]["type"] == "integer"
    properties = document["components"]["messages"]["paymentEvent"]["x-amqp-properties"]
    assert properties["delivery_mode"]["value"] == 2
    assert properties["content_type"]["value"] == "application/json"
    assert "value" not in properties["message_id"]  # one per message: only an example
    send = document["operations"]["publishPaymentEvent"]["bindings"]["amqp"]
    assert send["mandatory"] is True


def test_the_asyncapi_document_is_valid_asyncapi_3() -> None:
    validator = Draft7Validator(json.loads(ASYNCAPI_SPEC.read_text()))
    document = json.loads((DOCS / "asyncapi.json").read_text())
    assert [e.message[:200] for e in validator.iter_errors(document)] == []
    document["operations"]["publishPaymentEvent"]["action"] = "publish"  # AsyncAPI 2's word
    assert list(validator.iter_errors(document)) != []


def test_the_contract_command_checks_and_writes(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from payrelay.entrypoints.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["contract", "--check", str(DOCS)]).exit_code == 0
    stale = runner.invoke(app, ["contract", "--check", str(tmp_path)])
    assert stale.exit_code == 1 and REGENERATE in stale.output
    assert runner.invoke(app, ["contract", "--write", str(tmp_path)]).exit_code == 0
    assert drift(tmp_path) == []
    assert runner.invoke(app, ["contract", str(tmp_path)]).exit_code == 2  # neither flag
