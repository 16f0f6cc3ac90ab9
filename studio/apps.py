from django.apps import AppConfig
from django.conf import settings
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
