"""The first price book, mirroring each provider's documented table (shared/providers.md), and a
credit account for every team that existed before credits did."""

from django.db import migrations

# (provider, model, resolution, duration, plan, audio, per_video, per_second, published, source)
DEFAULT_RULES = [
    ("stability", "stable-video-diffusion", "", None, "", None, 20, 0, True,
     "Stability: 20 credits per successful generation; failures free"),
    *[
        ("akool", "image2video", res, secs, "", None, price, 0, True, "AKOOL image-to-video table")
        for secs, prices in ((5, (20, 25, 30)), (10, (40, 50, 60)))
        for res, price in zip(("720p", "1080p", "4k"), prices, strict=True)
    ],
    ("akool", "image2video", "", 5, "", True, 5, 0, True, "AKOOL: audio added to a 5 s video"),
    ("akool", "image2video", "", 10, "", True, 10, 0, True, "AKOOL: audio added to a 10 s video"),
    ("modelslab", "img2video_ultra", "", None, "basic", None, 31, 0, True,
     "ModelsLab ultra: $0.2 = 31 credits on the Basic plan"),
    ("modelslab", "img2video_ultra", "", None, "standard", None, 43, 0, True,
     "ModelsLab ultra: $0.2 = 43 credits on the Standard plan"),
    ("modelslab", "img2video", "", None, "", None, 10, 0, False,
     "No published price: set by staff"),
    ("aimlapi", "kling-video/v1/standard/image-to-video", "", None, "", None, 0, 6, False,
     "No published price: set by staff (per second)"),
    ("local", "camera-motion-v1", "", None, "", None, 0, 1, False,
     "Our own engine: set by staff (per second of video)"),
]
FIELDS = ("provider", "model", "resolution", "duration", "plan", "audio", "per_video",
          "per_second", "published", "source")


def forwards(apps, schema_editor):
    Version = apps.get_model("studio", "PriceBookVersion")
    Rule = apps.get_model("studio", "PriceRule")
    version = Version.objects.create(note="Defaults from the providers' documented price tables")
    Rule.objects.bulk_create(Rule(version=version, **dict(zip(FIELDS, row, strict=True)))
                             for row in DEFAULT_RULES)
    Account = apps.get_model("studio", "CreditAccount")
    for team in apps.get_model("studio", "Team").objects.filter(credits__isnull=True):
        Account.objects.create(team=team)


class Migration(migrations.Migration):
    dependencies = [("studio", "0003_credits")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
