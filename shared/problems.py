"""Validation errors as lines a person can act on."""

from __future__ import annotations

from pydantic import ValidationError


def problems(error: ValidationError, prefix: str = "", empty: str = "payload") -> list[str]:
    """One ``field.path: message`` per problem, the path after ``prefix``."""
    return [
        f"{prefix}{'.'.join(map(str, p['loc'])) or empty}: {p['msg']}"
        for p in error.errors(include_url=False, include_input=False)
    ]
