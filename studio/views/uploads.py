from django.http import Http404

from studio.access import team_view
from studio.jobs.chosen_image import team_upload
from studio.media import file_response


@team_view()
def upload_preview(request, upload_id):
    """An image the team uploaded (kept by the new-job form, or sent to the API), only ever to
    members of that team."""
    upload = team_upload(request.team, upload_id)
    if upload is None or not upload.file:
        raise Http404("No such image")
    return file_response(request, upload.file)
