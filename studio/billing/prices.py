"""Quoting a job from the price book. Prices are rows, so a new provider or resolution is a new
row, never a new branch here."""

from dataclasses import dataclass

from django.conf import settings

from studio.models import PriceBookVersion, PriceRule


class PriceUnavailable(LookupError):
    pass


@dataclass(frozen=True)
class Quote:
    version: PriceBookVersion
    rule: PriceRule
    amount: int


MATCH_FIELDS = ("model", "resolution", "duration", "plan", "audio")


def current_version() -> PriceBookVersion:
    return PriceBookVersion.objects.latest()


def provider_plan(provider: str) -> str:
    return settings.PROVIDER_PLANS.get(provider, "")


def quote(
    provider: str, model: str, params: dict, *, version: PriceBookVersion | None = None
) -> Quote:
    """The most specific rule of the version that matches; "any" fields match everything."""
    version = version or current_version()
    wanted = {
        "model": model,
        "resolution": str(params.get("resolution", "")),
        "duration": params.get("duration"),
        "plan": provider_plan(provider),
        "audio": params.get("audio_only"),
    }
    best, best_score = None, -1
    for rule in version.rules.filter(provider=provider):
        score = 0
        for field in MATCH_FIELDS:
            value = getattr(rule, field)
            if value in ("", None):
                continue
            if value != wanted[field]:
                break
            score += 1
        else:
            if score > best_score:
                best, best_score = rule, score
    if best is None:
        raise PriceUnavailable(f"No price is set for {provider} {model} with these settings.")
    return Quote(version=version, rule=best, amount=best.price(wanted["duration"]))
