from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def give_new_user_a_personal_team(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        from studio.teams import ensure_personal_team

        ensure_personal_team(instance)
