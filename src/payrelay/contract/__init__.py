"""The published message contract: JSON Schemas and an AsyncAPI document, generated from
the code, committed under docs/contract/ and checked against it by a test.

    payrelay contract --write docs/contract     # regenerate after changing the envelope
    payrelay contract --check docs/contract     # exit 1, naming the files, on any drift
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from payrelay.contract.asyncapi import asyncapi_document
from payrelay.contract.samples import EnvelopeClass
from payrelay.contract.schemas import ContractError, envelope_schemas
from payrelay.domain.events import Envelope

__all__ = ["REGENERATE", "ContractError", "drift", "generate_documents", "write_documents"]

REGENERATE = "payrelay contract --write docs/contract"


def _text(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def generate_documents(envelope: EnvelopeClass = Envelope) -> dict[str, str]:
    """Relative path -> text of every contract document; raises ContractError."""
    documents = {f"schemas/{kind}.schema.json": _text(schema)
                 for kind, schema in envelope_schemas(envelope).items()}
    documents["asyncapi.json"] = _text(asyncapi_document())
    return documents


def write_documents(directory: Path, documents: dict[str, str]) -> list[Path]:
    """Write the documents under `directory`; the paths written."""
    written = []
    for relative, text in documents.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def drift(directory: Path, envelope: EnvelopeClass = Envelope) -> list[str]:
    """What differs between the code and the documents under `directory` (empty: none)."""
    try:
        documents = generate_documents(envelope)
    except ContractError as exc:
        return [str(exc)]
    problems = []
    for relative, text in documents.items():
        path = directory / relative
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path} differs from what the code generates")
    return problems
