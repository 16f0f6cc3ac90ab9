"""The registry of providers: one module each, behind `studio.providers.base.Provider`."""

from studio.providers.aimlapi import AimlApi
from studio.providers.akool import Akool
from studio.providers.base import Provider, ProviderError
from studio.providers.local import LocalEngine
from studio.providers.modelslab import ModelsLab
from studio.providers.stability import Stability

PROVIDERS: dict[str, Provider] = {
    p.key: p for p in [LocalEngine(), Stability(), ModelsLab(), AimlApi(), Akool()]
}


def get_provider(key: str) -> Provider:
    try:
        return PROVIDERS[key]
    except KeyError:
        raise ProviderError(f"Unknown provider {key!r}", permanent=True) from None


def label_of(key: str) -> str:
    """A provider's name for people; a key no adapter knows any more is shown as it is."""
    provider = PROVIDERS.get(key)
    return provider.label if provider else key


def provider_choices() -> list[tuple[str, str]]:
    return [(p.key, p.label) for p in PROVIDERS.values()]


def choose(provider_key: str, params) -> tuple:
    """(provider, model spec, clean params, errors) for a submission or an estimate."""
    provider = PROVIDERS.get(provider_key)
    if provider is None:
        return None, None, {}, {"provider": [f"Choose one of: {', '.join(PROVIDERS)}."]}
    if reason := provider.unavailable_reason():
        return provider, None, {}, {"provider": [f"{provider.label} is unavailable: {reason}"]}
    spec = provider.model(params.get("model"))
    if spec is None:
        allowed = ", ".join(key for key, _ in provider.model_choices())
        return provider, None, {}, {"model": [f"Model must be one of: {allowed}."]}
    clean, errors = spec.clean(params)
    return provider, spec, clean, errors


__all__ = [
    "PROVIDERS",
    "Provider",
    "ProviderError",
    "choose",
    "get_provider",
    "label_of",
    "provider_choices",
]
