"""Providers and their models: parameters as JSON schema (from the same declarations as the
new-job form), whether each can take jobs now, and the price book rows that price it."""

from typing import Any

from ninja import Router, Schema, Status

from studio.api.errors import answers
from studio.billing.prices import current_version, provider_plan
from studio.providers import PROVIDERS

router = Router(tags=["providers"])


class PriceRowOut(Schema):
    resolution: str | None
    duration: int | None
    audio: bool | None
    per_video: int
    per_second: int


class ModelOut(Schema):
    key: str
    label: str
    help: str
    parameters: dict[str, Any]  # a JSON schema object
    prices: list[PriceRowOut]


class ProviderOut(Schema):
    key: str
    label: str
    available: bool
    unavailable_reason: str
    models: list[ModelOut]


@router.get(
    "", response=answers(200, list[ProviderOut]), summary="Providers, models, parameters and prices"
)
def providers(request):
    rules = list(current_version().rules.all())
    return Status(200, [_provider(provider, rules) for provider in PROVIDERS.values()])


def _provider(provider, rules) -> dict:
    reason = provider.unavailable_reason()
    offered = dict(provider.model_choices())
    return {
        "key": provider.key,
        "label": provider.label,
        "available": not reason,
        "unavailable_reason": reason,
        "models": [
            _model(provider, spec, rules) for spec in provider.models if spec.key in offered
        ],
    }


def _model(provider, spec, rules) -> dict:
    priced_as, plan = provider.priced_as(spec.key), provider_plan(provider.key)
    prices = [
        {
            "resolution": rule.resolution or None,
            "duration": rule.duration,
            "audio": rule.audio,
            "per_video": rule.per_video,
            "per_second": rule.per_second,
        }
        for rule in rules
        if rule.provider == provider.key
        and rule.model in ("", priced_as)
        and rule.plan in ("", plan)
        and (rule.per_video or rule.per_second)
    ]
    return {
        "key": spec.key,
        "label": spec.label,
        "help": spec.help,
        "parameters": parameters_schema(spec),
        "prices": prices,
    }


def parameters_schema(spec) -> dict:
    """A model's parameters as a JSON schema object, from the declarations the form is made of."""
    return {
        "type": "object",
        "properties": {param.name: param.schema() for param in spec.params},
        "required": [param.name for param in spec.params if param.required],
    }


def every_model_parameters() -> dict:
    """`params` of a job request: one of the models' schemas (documented in the OpenAPI)."""
    return {
        "anyOf": [
            parameters_schema(spec) | {"title": f"{provider.key} · {spec.key}"}
            for provider in PROVIDERS.values()
            for spec in provider.models
        ]
    }
