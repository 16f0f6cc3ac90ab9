from django import forms
from django.core.paginator import Paginator
from django.shortcuts import render
from django.views.decorators.vary import vary_on_headers

from studio.access import team_view
from studio.forms import OneLoopSelect
from studio.models import Job, JobState
from studio.providers import provider_choices
from studio.views.htmx import partial_or_page, query_without_page

PAGE_SIZE = 12


class GalleryFilter(forms.Form):
    member = forms.TypedChoiceField(
        required=False, coerce=int, empty_value=None, widget=OneLoopSelect
    )
    provider = forms.ChoiceField(required=False, widget=OneLoopSelect)
    state = forms.ChoiceField(required=False, widget=OneLoopSelect)

    def __init__(self, data, team):
        super().__init__(data)
        people = team.members.order_by("email").values_list("pk", "email")
        self.fields["member"].choices = [("", "Anyone")] + list(people)
        self.fields["provider"].choices = [("", "Any provider")] + provider_choices()
        self.fields["state"].choices = [("", "Finished videos")] + list(JobState.choices)

    def apply(self, jobs):
        data = self.cleaned_data if self.is_valid() else {}
        if data.get("member"):
            jobs = jobs.filter(creator_id=data["member"])
        if data.get("provider"):
            jobs = jobs.filter(provider=data["provider"])
        return jobs.filter(state=data["state"]) if data.get("state") else jobs.finished_videos()


@team_view()
@vary_on_headers("HX-Request")
def gallery(request):
    """The team's videos, filtered by who made them, provider and state, a page at a time."""
    filters = GalleryFilter(request.GET, request.team)
    jobs = filters.apply(Job.objects.filter(team=request.team, deleted_at__isnull=True))
    page = page_of_jobs(jobs, request.GET.get("page"))
    context = {"filters": filters, "page": page, "query": query_without_page(request)}
    return render(request, partial_or_page(request, "studio/gallery.html", "results"), context)


def page_of_jobs(jobs, number):
    """One page of `jobs`, the newest first, in three queries whatever the page: the count, the
    page's ids (an index-only scan of the gallery index skips the pages before it without reading
    their rows), then those jobs with their creators, only the columns the cards show."""
    page = Paginator(jobs.values_list("pk", flat=True), PAGE_SIZE).get_page(number)
    ids = list(page.object_list)
    found = Job.objects.for_cards().in_bulk(ids)
    page.object_list = [found[pk] for pk in ids if pk in found]
    return page
