"""Validate JSON against the schemas of the reconstructed OpenAPI description."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml
from openapi_schema_validator import OAS31Validator

SPEC_PATH = Path(__file__).parent / "data" / "devin-v3beta1-sessions.openapi.yaml"


@cache
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
    return loaded


def validate(schema_name: str, instance: Any) -> None:
    """Raise jsonschema.ValidationError unless `instance` fits components/schemas/NAME."""
    root = {"$ref": f"#/components/schemas/{schema_name}", "components": spec()["components"]}
    OAS31Validator(root).validate(instance)
