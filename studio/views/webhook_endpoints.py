"""Outbound webhooks on the team's settings: owners and admins register endpoints, see each
one's delivery log and send a delivery again. Members and viewers are refused (403)."""

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from studio.access import team_view
from studio.models import DeliveryState, Role, WebhookDelivery, WebhookEndpoint, WebhookEvent
from studio.outbound import endpoints
from studio.outbound.delivery import send_again
from studio.views.htmx import partial_or_page

LOG_PAGE_SIZE = 25


class EndpointForm(forms.Form):
    # A plain text field: the URL check (studio.public_urls) gives the one message that counts.
    url = forms.CharField(
        label="URL",
        max_length=2000,
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/webhooks/studio"}),
    )
    description = forms.CharField(max_length=200, required=False)
    events = forms.MultipleChoiceField(
        choices=WebhookEvent.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one event to receive."},
    )

    def refused(self, refusal: endpoints.EndpointRefused) -> None:
        for field, problems in refusal.errors.items():
            for problem in problems:
                self.add_error(field if field in self.fields else None, problem)


def _endpoint(request, endpoint_id) -> WebhookEndpoint:
    return get_object_or_404(WebhookEndpoint, pk=endpoint_id, team=request.team)


def _back(request, endpoint):
    return redirect("webhook_endpoint", team_slug=request.team.slug, endpoint_id=endpoint.pk)


@team_view(Role.ADMIN)
def webhooks(request):
    form = EndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            endpoint = endpoints.create_endpoint(request.membership, **form.cleaned_data)
        except endpoints.EndpointRefused as refusal:
            form.refused(refusal)
        else:
            messages.success(
                request, "The endpoint was added. Give its signing secret to your receiver."
            )
            return _back(request, endpoint)
    context = {"form": form, "endpoints": request.team.webhook_endpoints.all()}
    return render(request, "studio/webhooks.html", context)


@team_view(Role.ADMIN)
def webhook_endpoint(request, endpoint_id):
    endpoint = _endpoint(request, endpoint_id)
    if request.method != "POST":
        return _endpoint_page(request, endpoint)
    form = EndpointForm(request.POST)
    if form.is_valid():
        try:
            endpoints.update_endpoint(request.membership, endpoint, **form.cleaned_data)
        except endpoints.EndpointRefused as refusal:
            form.refused(refusal)
        else:
            messages.success(request, "The endpoint was saved.")
            return _back(request, endpoint)
    return _endpoint_page(request, endpoint, form=form)


def _endpoint_page(request, endpoint, *, form=None, secret=None):
    if form is None:
        fields = {"url": endpoint.url, "description": endpoint.description}
        form = EndpointForm(initial=fields | {"events": endpoint.events})
    page = Paginator(endpoints.recent_deliveries(endpoint), LOG_PAGE_SIZE)
    page = page.get_page(request.GET.get("page"))
    busy = [DeliveryState.PENDING, DeliveryState.SENDING]
    context = {
        "endpoint": endpoint,
        "form": form,
        "page": page,
        "secret": secret,
        "log_active": any(delivery.state in busy for delivery in page),
    }
    template = partial_or_page(request, "studio/webhook_endpoint.html", "log")
    return render(request, template, context)


@team_view(Role.ADMIN)
@require_POST
def webhook_secret(request, endpoint_id):
    """The secret on demand (a POST, so no link or prefetch shows it by accident)."""
    endpoint = _endpoint(request, endpoint_id)
    if request.htmx:
        context = {"endpoint": endpoint, "secret": endpoint.secret}
        return render(request, "studio/webhook_endpoint.html#secret", context)
    return _endpoint_page(request, endpoint, secret=endpoint.secret)


@team_view(Role.ADMIN)
@require_POST
def webhook_rotate(request, endpoint_id):
    endpoint = _endpoint(request, endpoint_id)
    secret = endpoints.rotate_secret(request.membership, endpoint)
    messages.success(request, "A new secret signs every attempt from now on; the old one is void.")
    return _endpoint_page(request, endpoint, secret=secret)


@team_view(Role.ADMIN)
@require_POST
def webhook_enable(request, endpoint_id):
    endpoint = _endpoint(request, endpoint_id)
    endpoints.enable(request.membership, endpoint)
    messages.success(request, "The endpoint is on again. Send again what it missed below.")
    return _back(request, endpoint)


@team_view(Role.ADMIN)
@require_POST
def webhook_disable(request, endpoint_id):
    endpoint = _endpoint(request, endpoint_id)
    if endpoints.disable_by_hand(request.membership, endpoint):
        messages.success(request, "The endpoint is off: nothing more is sent to it.")
    return _back(request, endpoint)


@team_view(Role.ADMIN)
@require_POST
def webhook_delete(request, endpoint_id):
    endpoint = _endpoint(request, endpoint_id)
    endpoints.delete_endpoint(request.membership, endpoint)
    messages.success(request, f"The endpoint {endpoint.url} and its delivery log were deleted.")
    return redirect("webhooks", team_slug=request.team.slug)


@team_view(Role.ADMIN)
@require_POST
def webhook_resend(request, endpoint_id, delivery_id):
    endpoint = _endpoint(request, endpoint_id)
    delivery = get_object_or_404(WebhookDelivery, pk=delivery_id, endpoint=endpoint)
    if send_again(delivery):
        messages.success(request, f"{delivery.message_id} will be sent again in a moment.")
    elif not endpoint.enabled:
        messages.error(request, "Turn the endpoint back on first.")
    else:
        messages.error(request, "That delivery is still being delivered.")
    return _back(request, endpoint)
