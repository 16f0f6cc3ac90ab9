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


# A published version's rules never change (an edit publishes a new version), so each process
# reads them once: quoting a job then costs one query (which version is current), not two.
_RULES: dict[tuple, dict[str, list[PriceRule]]] = {}


def _rules_of(version: PriceBookVersion) -> dict[str, list[PriceRule]]:
    key = (version.pk, version.created_at)  # the time too: a test database may reuse an id
    rules = _RULES.get(key)
    if rules is None:
        rules = {}
        for rule in version.rules.all():
            rules.setdefault(rule.provider, []).append(rule)
        if len(_RULES) > 16:
            _RULES.clear()
        _RULES[key] = rules
    return rules


def provider_plan(provider: str) -> str:
    return settings.PROVIDER_PLANS.get(provider, "")


def quote(
    provider: str, model: str, keys: dict, *, version: PriceBookVersion | None = None
) -> Quote:
    """The most specific rule of the version that matches; "any" fields match everything.

    `keys` are the price book's match fields (resolution, duration, audio) as the provider's
    adapter derives them from a job's parameters (`Provider.price_keys`). Nothing is ever priced
    at 0: a rule without a figure, or a per-second rule without a duration, is no price at all."""
    unknown = set(keys) - set(MATCH_FIELDS)
    if unknown:
        raise ValueError(f"not price book fields: {sorted(unknown)}")
    duration = keys.get("duration")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int)):
        raise ValueError(f"a duration to price must be whole seconds, got {duration!r}")
    version = version or current_version()
    wanted = {
        "model": model,
        "resolution": str(keys.get("resolution") or ""),
        "duration": duration,
        "plan": provider_plan(provider),
        "audio": keys.get("audio"),
    }
    best, best_score = None, -1
    for rule in _rules_of(version).get(provider, ()):
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
    if best.per_second and duration is None:
        raise PriceUnavailable(
            f"{provider} {model} is priced per second, but no duration was given."
        )
    amount = best.price(duration)
    if amount <= 0:
        raise PriceUnavailable(
            f"{provider} {model} has no published price, and staff have not set one yet."
        )
    return Quote(version=version, rule=best, amount=amount)


def quote_job(provider, model: str, params: dict) -> Quote:
    """The price of a job of `provider`'s `model` with these clean parameters: the adapter says
    which price book model and match fields apply (studio.providers.base.Provider)."""
    return quote(provider.key, provider.priced_as(model), provider.price_keys(model, params))
