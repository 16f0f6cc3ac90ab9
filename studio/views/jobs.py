from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseStopPolling

from studio.access import find_team_job, team_job_or_404, team_view
from studio.billing.estimate import estimate
from studio.forms import NewJobForm
from studio.jobs import eta
from studio.jobs.states import cancel
from studio.jobs.submit import JobRefused, submit_job
from studio.models import Role
from studio.providers import PROVIDERS


@team_view(Role.MEMBER)
def new_job(request):
    if request.method == "POST":
        form = NewJobForm(request.POST, request.FILES)
        try:
            job = submit_job(
                request.membership,
                request.FILES.get("image"),
                request.POST.get("provider", ""),
                request.POST,
                request.FILES,
            )
        except JobRefused as refusal:
            form.add_refusal(refusal.errors)
        else:
            return redirect("job_detail", team_slug=request.team.slug, job_id=job.pk)
    else:
        form = NewJobForm.like(find_team_job(request.team, request.GET.get("from")))
    figures = estimate(request.membership, form.provider_key, form.params_values())
    return render(request, "studio/job_new.html", {"form": form, "estimate": figures})


@team_view(Role.MEMBER)
def params_fields(request):
    """The provider-specific fields, swapped in when the provider select changes."""
    provider = PROVIDERS.get(request.GET.get("provider", ""))
    form = NewJobForm.like(
        None,
        provider_key=provider.key if provider else None,
        model_key=request.GET.get("model") if provider else None,
    )
    return render(request, "studio/job_new.html#params", {"form": form})


@team_view()
def job_detail(request, job_id):
    job = team_job_or_404(request, job_id)
    return render(request, "studio/job_detail.html", {"job": job, "eta": eta.estimate(job)})


@team_view()
def job_status(request, job_id):
    job = team_job_or_404(request, job_id)
    context = {"job": job, "eta": eta.estimate(job)}
    response = render(request, "studio/job_detail.html#status", context)
    if job.is_terminal:
        # 286 tells htmx to stop polling; the swap still happens, so the player appears.
        return HttpResponseStopPolling(response.content)
    return response


@team_view(Role.MEMBER)
@require_POST
def job_cancel(request, job_id):
    job = team_job_or_404(request, job_id)
    if job.creator_id != request.user.pk and not request.membership.can_manage:
        messages.error(request, "Only whoever submitted the job, or an admin, can cancel it.")
    elif not cancel(job):
        messages.error(request, "This job has already started, so it can no longer be canceled.")
    return redirect("job_detail", team_slug=request.team.slug, job_id=job.pk)


@team_view(Role.MEMBER)
def price_estimate(request):
    """The price and what would remain, refreshed as the form changes."""
    figures = estimate(request.membership, request.GET.get("provider", ""), request.GET)
    return render(request, "studio/job_new.html#price", {"estimate": figures})
