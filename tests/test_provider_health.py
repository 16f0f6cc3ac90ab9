"""The staff page of provider health: load, failures, paused accounts and incidents per provider."""

import itertools
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from studio.jobs.engine import WAITING_FOR_SLOT
from studio.models import IncidentKind, ProviderAccount, ProviderIncident
from studio.providers import PROVIDERS
from studio.providers.health import provider_health
from tests.factories import make_job

pytestmark = pytest.mark.django_db
URL = "/staff/providers/"


def job(personas, provider, state="queued", **fields):
    return make_job(personas.team, personas.member, state=state, provider=provider, **fields)


def health_of(key, now=None):
    return next(figures for figures in provider_health(now) if figures.key == key)


def row_of(html, marker):
    return next(row for row in re.findall(r"<tr[^>]*>.*?</tr>", html, re.S) if marker in row)


def test_the_url_is_named_and_linked_from_the_staff_nav(staff_client):
    assert reverse("staff_providers") == URL
    html = staff_client.get(reverse("staff_overview")).content.decode()
    assert f'href="{URL}"' in html


@pytest.mark.parametrize("who", ["anonymous", "owner", "member", "viewer", "outsider"])
def test_everyone_but_staff_gets_404(personas, client, client_for, who):
    if who != "anonymous":
        client = client_for(getattr(personas, who))
    assert client.get(URL).status_code == 404


def test_staff_only_read_it(staff_client):
    assert staff_client.get(URL).status_code == 200
    assert staff_client.post(URL).status_code == 405


def test_one_row_per_provider_with_its_availability(settings, staff_client):
    settings.STABILITY_API_KEY = ""
    settings.MODELSLAB_API_KEY = "ml-key"
    health = {figures.key: figures for figures in provider_health()}
    assert list(health) == list(PROVIDERS)
    assert not health["stability"].available
    assert "STABILITY_API_KEY" in health["stability"].unavailable_reason
    assert health["modelslab"].available and health["local"].available

    html = staff_client.get(URL).content.decode()
    assert "STABILITY_API_KEY" in row_of(html, 'id="provider-stability"')
    assert "available" in row_of(html, 'id="provider-modelslab"')
    assert html.count('<tr id="provider-') == len(PROVIDERS)


def test_staff_see_jobs_in_flight_and_waiting_for_a_slot_per_provider(personas, staff_client):
    job(personas, "modelslab", "queued", status_note=WAITING_FOR_SLOT)
    job(personas, "modelslab", "queued", status_note=WAITING_FOR_SLOT)
    job(personas, "modelslab", "queued")
    job(personas, "modelslab", "submitting")
    job(personas, "modelslab", "running")
    job(personas, "modelslab", "running")
    job(personas, "stability", "running")
    job(personas, "stability", "succeeded")  # finished: not in flight
    job(personas, "local", "queued")

    modelslab = health_of("modelslab")
    assert (modelslab.queued, modelslab.submitting, modelslab.running) == (3, 1, 2)
    assert modelslab.waiting_for_slot == 2
    stability = health_of("stability")
    assert (stability.queued, stability.submitting, stability.running) == (0, 0, 1)
    assert (health_of("local").queued, health_of("local").waiting_for_slot) == (1, 0)

    row = row_of(staff_client.get(URL).content.decode(), 'id="provider-modelslab"')
    cells = re.findall(r'<td class="num">\s*(\d+)', row)
    assert cells[:4] == ["3", "1", "2", "2"]


def test_last_success_is_the_newest_succeeded_job(personas):
    now = timezone.now()
    job(personas, "stability", "succeeded", finished_at=now - timedelta(hours=3))
    newest = job(personas, "stability", "succeeded", finished_at=now - timedelta(minutes=7))
    job(personas, "stability", "failed", finished_at=now - timedelta(minutes=1))
    job(personas, "modelslab", "succeeded", finished_at=now)  # another provider
    assert health_of("stability", now).last_success_at == newest.finished_at
    assert health_of("local", now).last_success_at is None


def test_error_rate_counts_only_jobs_finished_in_the_last_hour(personas, staff_client):
    now = timezone.now()
    for _ in range(3):
        job(personas, "stability", "succeeded", finished_at=now - timedelta(minutes=10))
    job(personas, "stability", "failed", finished_at=now - timedelta(minutes=50))
    job(personas, "stability", "failed", finished_at=now - timedelta(minutes=70))  # too old
    job(personas, "stability", "canceled")  # neither a success nor a failure
    job(personas, "stability", "running")

    stability = health_of("stability", now)
    assert (stability.succeeded_last_hour, stability.failed_last_hour) == (3, 1)
    assert stability.error_rate == pytest.approx(0.25)
    assert health_of("modelslab", now).error_rate is None

    html = staff_client.get(URL).content.decode()
    assert "25%" in row_of(html, 'id="provider-stability"')
    assert "1 of 4 failed" in row_of(html, 'id="provider-stability"')
    assert "—" in row_of(html, 'id="provider-modelslab"')


def test_all_failures_in_the_last_hour_is_100_percent(personas):
    job(personas, "modelslab", "failed")
    assert health_of("modelslab").error_percent == "100%"


def test_the_last_error_is_the_newest_of_failed_jobs_and_account_errors(personas, staff_client):
    now = timezone.now()
    job(personas, "stability", "failed", error="Old refusal.", finished_at=now - timedelta(hours=2))
    job(personas, "stability", "failed", error="The image was refused.", finished_at=now)
    ProviderAccount.objects.create(
        provider="stability",
        fingerprint="aaaa",
        last_error="Stability answered 500.",
        last_error_at=now - timedelta(minutes=5),
    )
    ProviderAccount.objects.create(
        provider="modelslab",
        fingerprint="bbbb",
        last_error="ModelsLab answered 429.",
        last_error_at=now - timedelta(minutes=5),
    )
    job(
        personas,
        "modelslab",
        "failed",
        error="Older job error.",
        finished_at=now - timedelta(hours=1),
    )

    stability, modelslab = health_of("stability", now), health_of("modelslab", now)
    assert (stability.last_error, stability.last_error_at) == ("The image was refused.", now)
    assert modelslab.last_error == "ModelsLab answered 429."
    assert health_of("local", now).last_error_at is None

    html = staff_client.get(URL).content.decode()
    assert "The image was refused." in row_of(html, 'id="provider-stability"')
    assert "ModelsLab answered 429." in row_of(html, 'id="provider-modelslab"')


def test_accounts_paused_by_a_rate_limit_show_until_when(personas, staff_client):
    now = timezone.now()
    until = now + timedelta(minutes=3)
    ProviderAccount.objects.create(
        provider="stability", fingerprint="pausedkey1", paused_until=until
    )
    ProviderAccount.objects.create(
        provider="stability", fingerprint="overkey2", paused_until=now - timedelta(seconds=1)
    )
    ProviderAccount.objects.create(provider="modelslab", fingerprint="freekey3")

    paused = health_of("stability", now).paused_accounts
    assert [(a.fingerprint, a.until) for a in paused] == [("pausedkey1", until)]
    assert health_of("modelslab", now).paused_accounts == []

    row = row_of(staff_client.get(URL).content.decode(), 'id="provider-stability"')
    assert "pausedkey1" in row and timezone.localtime(until).strftime("%Y-%m-%d %H:%M:%S") in row
    assert "overkey2" not in row


def test_incidents_of_the_last_30_days_show_job_team_kind_and_detail(personas, staff_client):
    unknown = job(personas, "stability", "failed")
    ProviderIncident.objects.create(
        job=unknown,
        provider="stability",
        kind=IncidentKind.OUTCOME_UNKNOWN,
        detail="Stability did not answer the submission.",
    )
    charged = job(personas, "modelslab", "failed")
    ProviderIncident.objects.create(
        job=charged, provider="modelslab", kind=IncidentKind.FILTERED_CHARGED, detail="NSFW"
    )
    old = job(personas, "modelslab", "failed")
    incident = ProviderIncident.objects.create(
        job=old, provider="modelslab", kind=IncidentKind.KEY_MISMATCH, detail="Old key"
    )
    ProviderIncident.objects.filter(pk=incident.pk).update(
        created_at=timezone.now() - timedelta(days=31)
    )

    stability = health_of("stability")
    assert [(i.job_id, i.team, i.kind) for i in stability.incidents] == [
        (str(unknown.pk), "Team A", "outcome_unknown")
    ]
    assert [i.kind for i in health_of("modelslab").incidents] == ["filtered_charged"]

    html = staff_client.get(URL).content.decode()
    row = row_of(html, str(unknown.pk))
    assert "Submission outcome unknown" in row and "outcome_unknown" in row
    assert "Team A" in row and "Stability did not answer the submission." in row
    assert "Filtered, probably charged by the provider" in row_of(html, str(charged.pk))
    assert str(old.pk) not in html


def test_no_incidents_says_so(staff_client):
    assert "No incidents in the last 30 days." in staff_client.get(URL).content.decode()


def _busy_providers(personas, count):
    """`count` jobs spread over every provider and state, an incident for every fourth, and an
    account per provider with an error and a pause."""
    now = timezone.now()
    states = itertools.cycle(["queued", "submitting", "running", "succeeded", "failed"])
    providers = itertools.cycle(list(PROVIDERS))
    for n in range(count):
        made = job(personas, next(providers), next(states), error=f"error {n}")
        if n % 4 == 0:
            ProviderIncident.objects.create(
                job=made, provider=made.provider, kind=IncidentKind.OUTCOME_UNKNOWN, detail=str(n)
            )
    for key in PROVIDERS:
        ProviderAccount.objects.create(
            provider=key,
            fingerprint=f"{key[:8]}-fp",
            paused_until=now + timedelta(minutes=1),
            last_error="429",
            last_error_at=now,
        )


# Session, user, the base page's team list; job figures, newest failures, accounts, incidents.
MOST_QUERIES = 7


@pytest.mark.parametrize("count", [10, 50])
def test_the_page_makes_a_constant_number_of_queries(
    personas, staff_client, django_assert_max_num_queries, count
):
    _busy_providers(personas, count)
    with django_assert_max_num_queries(MOST_QUERIES):
        response = staff_client.get(URL)
    assert response.status_code == 200
    assert response.content.decode().count("Submission outcome unknown") == (count + 3) // 4
