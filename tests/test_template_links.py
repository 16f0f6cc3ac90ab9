"""The cheaper template pieces of the workspace pages (issue 9) draw what Django's own did:
`{% job_url %}` gives `{% url %}`'s address, and OneLoopSelect the options of Django's select."""

import uuid

import pytest
from django.template import Context, Template
from django.urls import reverse
from pytest_django.asserts import assertHTMLEqual

from studio.forms import OneLoopSelect, ProviderSelect

JOB = uuid.UUID("3f2b8c1e-9d4a-4e7b-8c2d-1a2b3c4d5e6f")


@pytest.mark.parametrize(
    "name, rest",
    [("job_detail", []), ("job_status", []), ("job_cancel", []), ("job_file", ["poster"])],
)
@pytest.mark.parametrize("slug", ["studio", "00000000-0000-0000-0000-000000000000"])
def test_job_url_gives_the_address_url_gives(name, rest, slug):
    # The second slug is the tag's own placeholder: the job's id still goes in its place.
    drawn = Template(
        "{% load job_urls %}{% job_url name slug job *rest %}".replace(
            "*rest", " ".join(f"'{piece}'" for piece in rest)
        )
    ).render(Context({"name": name, "slug": slug, "job": JOB}))
    assert drawn == reverse(name, args=[slug, JOB, *rest])


def test_job_url_follows_the_script_prefix():
    from django.urls import set_script_prefix

    link = Template("{% load job_urls %}{% job_url 'job_detail' 'team' job %}")
    assert link.render(Context({"job": JOB})) == f"/t/team/jobs/{JOB}/"
    set_script_prefix("/studio/")  # served under a path: the address reversed before is not reused
    try:
        assert link.render(Context({"job": JOB})) == f"/studio/t/team/jobs/{JOB}/"
    finally:
        set_script_prefix("/")


def test_one_loop_select_draws_what_djangos_select_draws():
    from django.forms import Select

    choices = [("", "Anyone"), ("1", "a&b@example.test"), ("2", 'quote " here')]
    attrs = {"id": "id_member", "disabled": False, "required": True}
    for value in ("", "2"):
        assertHTMLEqual(
            OneLoopSelect(choices=choices).render("member", value, attrs),
            Select(choices=choices).render("member", value, attrs),
        )


def test_provider_select_keeps_its_disabled_options(monkeypatch):
    from studio.providers import PROVIDERS

    kling = next(key for key in PROVIDERS if key != "local")
    monkeypatch.setattr(type(PROVIDERS[kling]), "unavailable_reason", lambda self: "no key")
    drawn = ProviderSelect(choices=[("local", "Local"), (kling, "Remote")]).render("provider", "")
    assert f'<option value="{kling}" disabled title="no key">Remote — unavailable: no key' in drawn
