"""Sessions move to studio_session, which keeps the signed-in user's id beside the data (see
studio.models.Session). Everyone stays signed in: each unexpired session is copied with the user
id its data names, then removed from Django's table, which nothing reads any more."""

from django.db import migrations, models
from django.utils import timezone

BATCH = 1000


def copy_sessions(apps, schema_editor):
    # Django signs session data with a salt named after the store's class: SessionStore.
    from django.contrib.sessions.backends.db import SessionStore

    Old, New = apps.get_model("sessions", "Session"), apps.get_model("studio", "Session")
    decoder = SessionStore()
    batch = []
    for old in Old.objects.filter(expire_date__gt=timezone.now()).iterator(chunk_size=BATCH):
        user_id = str(decoder.decode(old.session_data).get("_auth_user_id"))
        user_id = int(user_id) if user_id.isdigit() else None
        batch.append(New(old.session_key, old.session_data, old.expire_date, user_id))
        if len(batch) == BATCH:
            New.objects.bulk_create(batch, ignore_conflicts=True)
            batch = []
    New.objects.bulk_create(batch, ignore_conflicts=True)
    Old.objects.all().delete()


def copy_sessions_back(apps, schema_editor):
    """Undoing the move keeps everyone signed in too."""
    Old, New = apps.get_model("sessions", "Session"), apps.get_model("studio", "Session")
    batch = []
    for new in New.objects.filter(expire_date__gt=timezone.now()).iterator(chunk_size=BATCH):
        batch.append(Old(new.session_key, new.session_data, new.expire_date))
        if len(batch) == BATCH:
            Old.objects.bulk_create(batch, ignore_conflicts=True)
            batch = []
    Old.objects.bulk_create(batch, ignore_conflicts=True)


class Migration(migrations.Migration):

    dependencies = [
        ('studio', '0012_shared_cache_table'),
        ('sessions', '0001_initial'),
    ]

    operations = [
        migrations.CreateModel(
            name='Session',
            fields=[
                ('session_key', models.CharField(max_length=40, primary_key=True, serialize=False, verbose_name='session key')),
                ('session_data', models.TextField(verbose_name='session data')),
                ('expire_date', models.DateTimeField(db_index=True, verbose_name='expire date')),
                ('user_id', models.BigIntegerField(blank=True, null=True)),
            ],
            options={
                'verbose_name': 'session',
                'verbose_name_plural': 'sessions',
                'db_table': 'studio_session',
                'abstract': False,
            },
        ),
        migrations.RunPython(copy_sessions, copy_sessions_back),
    ]
