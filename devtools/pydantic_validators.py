"""The relay with its request validators built by pydantic from relay/api.py as it starts, the way a pydantic app
builds them, instead of by pydantic-core from the committed core schemas: the alternative ``make bench`` measures
beside the relay's own (not taken: relay/bodies.py says why).

    python -m uvicorn devtools.pydantic_validators:app      (from functions/chat, the relay's layer on the path)
"""

from __future__ import annotations

from typing import cast

from pydantic import TypeAdapter
from pydantic_core import SchemaValidator

from app import app
from relay import api, bodies

# TypeAdapter's validator is a PluggableSchemaValidator only when a pydantic plugin is installed; none is.
bodies._VALIDATORS.update({name: cast(SchemaValidator, TypeAdapter(body).validator)
                           for name, body in api.REQUEST_BODIES.items()})

__all__ = ["app"]
