from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured


class StudioConfig(AppConfig):
    name = "studio"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from studio import signals  # noqa: F401  (connects the receivers)
        from studio.providers.akool_crypto import check_credentials

        # AKOOL's callbacks are decrypted with the client secret as the AES key and the client
        # id as the IV: lengths AES cannot take would refuse every callback, so refuse to start.
        akool = settings.AKOOL_CLIENT_ID, settings.AKOOL_CLIENT_SECRET
        if any(akool) and (reason := check_credentials(*akool)):
            raise ImproperlyConfigured(reason)


@checks.register(checks.Tags.caches)
def cache_sharing(app_configs, **kwargs):
    """Say at start-up what is not shared between processes (migrate, runserver, check)."""
    if settings.REDIS_URL or settings.DEBUG:
        return []
    return [
        checks.Warning(
            "REDIS_URL is not set: failed logins are counted across processes in the database "
            "cache, but each process counts the API's per-token rate limit on its own.",
            hint="Set REDIS_URL when several web processes serve the API.",
            id="studio.W001",
        )
    ]
