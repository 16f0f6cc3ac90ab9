"""The shared cache's table (settings.CACHE_TABLE), for installs without Redis: failed logins are
counted in it across every web process. createcachetable does nothing for a cache that is not in
the database, and nothing when the table exists."""

from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("studio", "0011_gallery_index")]
    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
