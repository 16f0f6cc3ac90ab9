"""The registry of providers: one module each, behind `studio.providers.base.Provider`."""

from studio.providers.base import Provider, ProviderError
from studio.providers.local import LocalEngine

PROVIDERS: dict[str, Provider] = {p.key: p for p in [LocalEngine()]}


def get_provider(key: str) -> Provider:
    try:
        return PROVIDERS[key]
    except KeyError:
        raise ProviderError(f"Unknown provider {key!r}", permanent=True) from None


def provider_choices() -> list[tuple[str, str]]:
    return [(p.key, p.label) for p in PROVIDERS.values()]


__all__ = ["PROVIDERS", "Provider", "ProviderError", "get_provider", "provider_choices"]
