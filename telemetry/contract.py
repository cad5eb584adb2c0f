"""The per-attempt telemetry contract: its version, names and JSON Schema.

Pure Python (no Django). The schema itself lives in
``telemetry/schema/attempt-telemetry.v1.schema.json`` and is described field by
field in docs/telemetry.md.

Public API:
    SCHEMA_VERSION              the version written into every record ("1.0")
    EXIT_REASONS, PROBES, BACKEND_KINDS
    REQUIRED_FIELDS, VRAM_FIELDS
    attempt_schema() -> dict    the parsed schema (cached)
    schema_errors(record) -> list[tuple[str, str]]   (JSON path, message) per violation

Versioning: "MAJOR.MINOR". A minor version only adds optional fields, so every
record written before it stays valid. Anything else (a field removed, renamed,
made required, or its meaning or unit changed) is a new major version with its
own schema file; records name their version, so old ones keep validating.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA_VERSION = "1.0"
SCHEMA_DIR = Path(__file__).parent / "schema"

EXIT_REASONS = ("success", "maxWait", "attemptLimit", "postExecution", "unknown")
PROBES = ("pynvml", "system_stats", "nvidia_smi")
BACKEND_KINDS = ("comfyui", "runpod")

VRAM_FIELDS = (
    "vram_total_mb",
    "vram_before_mb",
    "vram_after_mb",
    "vram_delta_mb",
    "vram_free_before_mb",
    "vram_free_after_mb",
)


@cache
def schema_document(name: str) -> dict[str, Any]:
    """A schema file from telemetry/schema, parsed once."""
    document: dict[str, Any] = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(document)
    return document


def attempt_schema() -> dict[str, Any]:
    return schema_document("attempt-telemetry.v1.schema.json")


REQUIRED_FIELDS: tuple[str, ...] = tuple(attempt_schema()["required"])


@cache
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(schema_document(name), format_checker=Draft202012Validator.FORMAT_CHECKER)


def schema_errors(
    record: Any, schema_name: str = "attempt-telemetry.v1.schema.json"
) -> list[tuple[str, str]]:
    """Every violation of a schema in telemetry/schema, as (JSON path, message), in a stable order."""
    validator = _validator(schema_name)
    errors = sorted(validator.iter_errors(record), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [(error.json_path, error.message) for error in errors]
