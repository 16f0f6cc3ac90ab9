"""`{% job_url name team_slug job_id ... %}`: the same address as `{% url %}`, for the routes under
one job, reversed once per route and team rather than once per link. A gallery page shows 12 cards
of up to 4 links each, and the polled status partial links back to its job: Django's reverse() was
8 % of the gallery's CPU."""

import functools
import uuid

from django import template
from django.urls import get_script_prefix, get_urlconf, reverse

register = template.Library()

PLACEHOLDER = str(uuid.UUID(int=0))


@functools.lru_cache(maxsize=4096)
def _around_job_id(urlconf, script_prefix, name, team_slug, rest) -> tuple[str, str]:
    """The route's address split where the job's id goes. The id follows the team's slug in every
    job route, so the last occurrence of the placeholder is the id's place, whatever the slug."""
    address = reverse(name, urlconf=urlconf, args=[team_slug, PLACEHOLDER, *rest])
    before, _, after = address.rpartition(PLACEHOLDER)
    return before, after


@register.simple_tag
def job_url(name: str, team_slug: str, job_id, *rest) -> str:
    before, after = _around_job_id(get_urlconf(), get_script_prefix(), name, team_slug, rest)
    return f"{before}{uuid.UUID(str(job_id))}{after}"
