"""Rows from before the job engine: every job gets its callback token, every active job a time
for the engine to look at it; and ModelsLab img2video loses the placeholder price the first
price book gave it, since it has no published price and staff have not set one."""

import secrets

from django.db import migrations
from django.db.models import F


def forwards(apps, schema_editor):
    Job = apps.get_model("studio", "Job")
    for job in Job.objects.filter(webhook_token__isnull=True).only("pk"):
        Job.objects.filter(pk=job.pk).update(webhook_token=secrets.token_urlsafe(32))
    Job.objects.filter(
        state__in=["queued", "submitting", "running"], next_poll_at__isnull=True
    ).update(next_poll_at=F("created_at"))

    Version = apps.get_model("studio", "PriceBookVersion")
    Rule = apps.get_model("studio", "PriceRule")
    current = Version.objects.order_by("-id").first()
    placeholder = current and current.rules.filter(
        provider="modelslab", model="img2video", per_video=10, published=False
    )
    if not placeholder or not placeholder.exists():
        return  # staff already priced it: keep their figure
    new = Version.objects.create(note="ModelsLab img2video: no published price until staff set one")
    rules = []
    for rule in current.rules.all():
        rule.pk, rule.version_id = None, new.pk
        if rule.provider == "modelslab" and rule.model == "img2video" and rule.per_video == 10:
            rule.per_video = 0
            rule.source = "No published price: staff must set one before jobs are taken"
        rules.append(rule)
    Rule.objects.bulk_create(rules)


class Migration(migrations.Migration):
    dependencies = [("studio", "0006_provider_engine")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
