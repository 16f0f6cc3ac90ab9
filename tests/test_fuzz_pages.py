"""Whatever a browser (or anyone) sends to our pages, the answer is never a server error.

Hypothesis sends query strings, form fields, route values and Range headers made of the values
that broke pages before (issue 9): NUL characters, figures beyond int()'s 4,300 digits, digits
that are not ASCII ("²", "٣"), very long text. Each test sets its database up once and sends
every example against it.
"""

from urllib.parse import quote

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import make_job

pytestmark = pytest.mark.django_db

fuzz = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)  # UTF-8 encodable
SPECIAL = st.sampled_from(
    ["\x00", "a\x00", "1\x00", "²", "٣", "Ⅷ", "-1", "-0", "+1", "1e9", "1_000", " 7 ", "0x10"]
    + ["NaN", "9" * 19, "9" * 4301, "9" * 5000, "1" * 400, "2026-02-30", "99999-01-01"]
)
NASTY = st.one_of(
    SPECIAL,
    TEXT,
    TEXT.map(lambda text: text + "\x00"),
    st.integers(min_value=-(10**25), max_value=10**25).map(str),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=250, max_size=400),
)

JOB_PARAMS = ["duration", "resolution", "aspect", "fps", "motion", "strength"]
FILTERS = ["member", "provider", "kind", "date_from", "date_to", "page"]
# Each page with the query parameters it reads.
TEAM_PAGES = {
    "dashboard": ["page"],
    "gallery": ["member", "provider", "state", "page"],
    "credits": FILTERS,
    "credits_csv": FILTERS,
    "job_new": ["from", "provider", "model"],
    "job_params": ["provider", "model"],
    "job_price": ["provider", "model", *JOB_PARAMS],
    "team_settings": ["page"],
    "budgets": ["page"],
    "webhooks": ["page"],
}
RECONCILIATION = ["provider", "start", "end", "day", "kind", "page"]
STAFF_PAGES = {
    "staff_overview": ["q", "sort", "page"],
    "staff_prices": ["version"],
    "staff_audit": ["page"],
    "staff_providers": ["page"],
    "staff_reconciliation": RECONCILIATION,
    "staff_reconciliation_csv": RECONCILIATION,
}


def query(names):
    return st.dictionaries(st.sampled_from(names), NASTY, min_size=1, max_size=len(names))


def quiet_client(user) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def assert_answered(response, what):
    assert response.status_code < 500, f"{what} answered {response.status_code}"


def test_team_pages_never_answer_a_server_error(personas):
    client = quiet_client(personas.owner)

    @fuzz
    @given(name=st.sampled_from(sorted(TEAM_PAGES)), data=st.data())
    def check(name, data):
        params = data.draw(query(TEAM_PAGES[name]), label="params")
        url = reverse(name, args=[personas.team.slug])
        assert_answered(client.get(url, params), f"GET {url} {params!r:.300}")

    check()


def test_staff_pages_never_answer_a_server_error(staff, personas):
    client = quiet_client(staff)

    @fuzz
    @given(name=st.sampled_from(sorted(STAFF_PAGES)), data=st.data())
    def check(name, data):
        params = data.draw(query(STAFF_PAGES[name]), label="params")
        url = reverse(name)
        assert_answered(client.get(url, params), f"GET {url} {params!r:.300}")

    check()


def test_route_values_never_answer_a_server_error(personas):
    client = quiet_client(personas.outsider)
    job = make_job(personas.team, personas.owner)
    prefixes = ["/invites/", "/inputs/", "/inputs/files/", "/hooks/local/", "/hooks/akool/"]
    prefixes += [f"/t/{personas.outsider_team.slug}/jobs/{job.pk}/files/"]

    @fuzz
    @given(prefix=st.sampled_from(prefixes), value=NASTY.filter(bool))
    def check(prefix, value):
        url = prefix + quote(value, safe="") + "/"
        assert_answered(client.get(url), f"GET {url:.300}")
        assert_answered(client.post(url, {}), f"POST {url:.300}")

    check()


def test_range_headers_never_answer_a_server_error(personas):
    client = quiet_client(personas.member)
    job = make_job(personas.team, personas.owner, state="succeeded")
    job.video.save("video.mp4", ContentFile(b"\0" * 1000))
    url = reverse("job_file", args=[personas.team.slug, job.pk, "video"])
    figure = st.one_of(NASTY, st.integers(min_value=0, max_value=2000).map(str))

    @fuzz
    @given(first=figure, last=figure, unit=st.sampled_from(["bytes=", "bytes = ", "", "items="]))
    def check(first, last, unit):
        header = f"{unit}{first}-{last}"
        try:
            header.encode("latin-1")
        except UnicodeEncodeError:
            return  # not a header anyone can send
        response = client.get(url, HTTP_RANGE=header)
        assert_answered(response, f"Range {header!r:.300}")
        if response.status_code == 206:
            assert int(response["Content-Length"]) == len(b"".join(response.streaming_content))

    check()


def test_forms_never_answer_a_server_error(personas):
    client = quiet_client(personas.owner)
    member = personas.membership(personas.member)
    slug = personas.team.slug
    forms = {
        reverse("job_new", args=[slug]): ["provider", "model", *JOB_PARAMS],
        reverse("invite_create", args=[slug]): ["email", "role"],
        reverse("budgets", args=[slug]): ["monthly_cap", "low_balance_level", f"limit-{member.pk}"],
        reverse("team_create"): ["name"],
        reverse("token_create", args=[slug]): ["name", "scope"],
        reverse("webhooks", args=[slug]): ["url", "description", "events"],
        reverse("member_role", args=[slug, member.pk]): ["role"],
    }

    @fuzz
    @given(url=st.sampled_from(sorted(forms)), data=st.data())
    def check(url, data):
        fields = data.draw(query(forms[url]), label="fields")
        assert_answered(client.post(url, fields), f"POST {url} {fields!r:.300}")

    check()
