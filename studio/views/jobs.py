from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseStopPolling

from studio import unchanged_polls
from studio.access import find_team_job, team_job_or_404, team_view
from studio.billing.estimate import estimate
from studio.forms import NewJobForm
from studio.jobs import chosen_image, derived, eta
from studio.jobs.deletion import DeleteRefused, delete_video, may_delete
from studio.jobs.states import cancel, may_cancel
from studio.jobs.submit import JobRefused, StorageUnavailable, submit_job
from studio.models import Role
from studio.providers import PROVIDERS


@team_view(Role.MEMBER)
def new_job(request):
    status = 200
    if request.method == "POST":
        upload = request.FILES.get("image")
        kept_id, from_id = request.POST.get("kept_image", ""), request.POST.get("from_job", "")
        try:
            image = chosen_image.chosen(request.team, upload, kept_id, from_id)
            job = submit_job(
                request.membership,
                image,
                request.POST.get("provider", ""),
                request.POST,
                request.FILES,
            )
        except JobRefused as refusal:
            form = NewJobForm(request.POST, request.FILES)  # only a refusal shows the form again
            form.add_refusal(refusal.errors)
            if isinstance(refusal, StorageUnavailable):
                status = 503  # our fault, and passing: not a form the member got wrong
            else:  # keep the image, so the member need not choose it again
                form.keep(chosen_image.after_refusal(request.membership, upload, kept_id, from_id))
        else:
            return redirect("job_detail", team_slug=request.team.slug, job_id=job.pk)
    else:
        form = NewJobForm.like(find_team_job(request.team, request.GET.get("from")))
    figures = estimate(request.membership, form.provider_key, form.params_values())
    return render(
        request, "studio/job_new.html", {"form": form, "estimate": figures}, status=status
    )


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


def _status_context(request, job) -> dict:
    context = {"job": job, "eta": eta.estimate(job)}
    if job.is_terminal:  # what a finished job offers; a polled active job computes none of it
        context["may_delete"] = may_delete(request.membership, job) and not job.deleted_at
        can_submit = request.membership.can_submit
        context["audio_price"] = derived.audio_price(job) if can_submit else None
    return context


@team_view()
def job_detail(request, job_id):
    job = team_job_or_404(request, job_id)
    return render(request, "studio/job_detail.html", _status_context(request, job))


@team_view()
def job_status(request, job_id):
    job = team_job_or_404(request, job_id)
    response = render(request, "studio/job_detail.html#status", _status_context(request, job))
    if job.is_terminal:
        # 286 tells htmx to stop polling; the swap still happens, so the player appears.
        return HttpResponseStopPolling(response.content)
    unchanged_polls.mark_cacheable(response, request, job)
    return response


@team_view(Role.MEMBER)
@require_POST
def job_cancel(request, job_id):
    job = team_job_or_404(request, job_id)
    if not may_cancel(request.membership, job):
        messages.error(request, "Only whoever submitted the job, or an admin, can cancel it.")
    elif not cancel(job):
        job.refresh_from_db(fields=["state"])
        if job.is_active:  # a remote provider has it, and is charging for it already
            messages.error(
                request,
                f"{job.provider_label} is already making this video, so it can no longer be "
                "canceled.",
            )
        else:
            messages.error(request, "This job has already ended, so there is nothing to cancel.")
    return redirect("job_detail", team_slug=request.team.slug, job_id=job.pk)


@team_view(Role.MEMBER)
def price_estimate(request):
    """The price and what would remain, refreshed as the form changes."""
    figures = estimate(request.membership, request.GET.get("provider", ""), request.GET)
    return render(request, "studio/job_new.html#price", {"estimate": figures})


@team_view(Role.MEMBER)
@require_POST
def job_add_audio(request, job_id):
    """A new job adding an audio track to this job's finished video (AKOOL)."""
    source = team_job_or_404(request, job_id)
    try:
        job = derived.add_audio(request.membership, source, request.POST, request.FILES)
    except JobRefused as refusal:
        for messages_ in refusal.errors.values():
            for message in messages_:
                messages.error(request, message)
        return redirect("job_detail", team_slug=request.team.slug, job_id=source.pk)
    return redirect("job_detail", team_slug=request.team.slug, job_id=job.pk)


@team_view(Role.MEMBER)
@require_POST
def job_delete(request, job_id):
    job = team_job_or_404(request, job_id)
    try:
        deleted = delete_video(request.membership, job)
    except (DeleteRefused, PermissionDenied) as refusal:
        messages.error(request, str(refusal))
        return redirect("job_detail", team_slug=request.team.slug, job_id=job.pk)
    if deleted:
        messages.success(request, "The video was deleted.")
    return redirect("gallery", team_slug=request.team.slug)
