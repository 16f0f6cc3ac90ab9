"""Request bodies the API reads itself (JSON or multipart, one operation taking either), as the
OpenAPI schema documents them."""

from __future__ import annotations

from studio.api.providers import every_model_parameters

STRING = {"type": "string"}
FILE = {"type": "string", "format": "binary"}
URL = {"type": "string", "format": "uri"}


def fields(properties: dict, required=(), **more) -> dict:
    return {"type": "object", "required": list(required), "properties": properties, **more}


def body(*, json: dict | None = None, multipart: dict | None = None) -> dict:
    content = {}
    if json is not None:
        content["application/json"] = {"schema": json}
    if multipart is not None:
        content["multipart/form-data"] = {"schema": multipart}
    return {"required": True, "content": content}


def job_fields(**more) -> dict:
    """A job's provider, model and parameters (one of the models' declared schemas), and more."""
    return {"provider": STRING, "model": STRING, "params": every_model_parameters(), **more}
