from django.http import Http404

from studio.access import team_job_or_404, team_view
from studio.media import file_response
from studio.models.jobs import FILE_FIELDS


@team_view()
def job_file(request, job_id, kind):
    """A job's input image, video or poster, only ever to members of the job's team."""
    job = team_job_or_404(request, job_id)
    field = getattr(job, FILE_FIELDS.get(kind, ""), None)
    if not field:
        raise Http404("No such file")
    download = None
    if request.GET.get("download"):
        download = f"{request.team.slug}-{str(job.pk)[:8]}.{field.name.rsplit('.', 1)[-1]}"
    return file_response(request, field, download_name=download)
