from django.urls import include, path

from studio import inputs, webhooks
from studio.views import (
    budgets,
    credits,
    files,
    gallery,
    home,
    jobs,
    staff,
    teams,
    tokens,
    uploads,
    webhook_endpoints,
)

# Everything of a team lives under /t/<team_slug>/ and goes through studio.access.team_view.
team_patterns = [
    path("", home.dashboard, name="dashboard"),
    path("jobs/new/", jobs.new_job, name="job_new"),
    path("jobs/new/params/", jobs.params_fields, name="job_params"),
    path("jobs/new/price/", jobs.price_estimate, name="job_price"),
    path("images/<uuid:upload_id>/", uploads.upload_preview, name="upload_preview"),
    path("jobs/<uuid:job_id>/", jobs.job_detail, name="job_detail"),
    path("jobs/<uuid:job_id>/status/", jobs.job_status, name="job_status"),
    path("jobs/<uuid:job_id>/cancel/", jobs.job_cancel, name="job_cancel"),
    path("jobs/<uuid:job_id>/add-audio/", jobs.job_add_audio, name="job_add_audio"),
    path("jobs/<uuid:job_id>/delete/", jobs.job_delete, name="job_delete"),
    path("jobs/<uuid:job_id>/files/<str:kind>/", files.job_file, name="job_file"),
    path("gallery/", gallery.gallery, name="gallery"),
    path("credits/", credits.credits_page, name="credits"),
    path("credits/ledger.csv", credits.ledger_csv, name="credits_csv"),
    path("settings/budgets/", budgets.budgets, name="budgets"),
    path("settings/", teams.team_settings, name="team_settings"),
    path("settings/leave/", teams.team_leave, name="team_leave"),
    path("settings/tokens/", tokens.token_create, name="token_create"),
    path("settings/tokens/<int:token_id>/revoke/", tokens.token_revoke, name="token_revoke"),
    path("settings/invites/", teams.invite_create, name="invite_create"),
    path("settings/invites/<int:invite_id>/revoke/", teams.invite_revoke, name="invite_revoke"),
    path("settings/members/<int:membership_id>/role/", teams.member_role, name="member_role"),
    path("settings/members/<int:membership_id>/remove/", teams.member_remove, name="member_remove"),
    path("settings/webhooks/", webhook_endpoints.webhooks, name="webhooks"),
    path(
        "settings/webhooks/<int:endpoint_id>/",
        webhook_endpoints.webhook_endpoint,
        name="webhook_endpoint",
    ),
    path(
        "settings/webhooks/<int:endpoint_id>/secret/",
        webhook_endpoints.webhook_secret,
        name="webhook_secret",
    ),
    path(
        "settings/webhooks/<int:endpoint_id>/rotate/",
        webhook_endpoints.webhook_rotate,
        name="webhook_rotate",
    ),
    path(
        "settings/webhooks/<int:endpoint_id>/enable/",
        webhook_endpoints.webhook_enable,
        name="webhook_enable",
    ),
    path(
        "settings/webhooks/<int:endpoint_id>/disable/",
        webhook_endpoints.webhook_disable,
        name="webhook_disable",
    ),
    path(
        "settings/webhooks/<int:endpoint_id>/delete/",
        webhook_endpoints.webhook_delete,
        name="webhook_delete",
    ),
    path(
        "settings/webhooks/<int:endpoint_id>/deliveries/<int:delivery_id>/resend/",
        webhook_endpoints.webhook_resend,
        name="webhook_resend",
    ),
]

urlpatterns = [
    path("", home.home, name="home"),
    path("teams/new/", teams.team_create, name="team_create"),
    # Invite tokens are URL-safe base64, the slug alphabet: anything else is no invite (404).
    path("invites/<slug:token>/", teams.invite_accept, name="invite_accept"),
    # Staff only; everyone else gets 404.
    path("staff/", staff.staff_overview, name="staff_overview"),
    path("staff/teams/<int:team_id>/credits/", staff.staff_grant, name="staff_grant"),
    path("staff/prices/", staff.staff_prices, name="staff_prices"),
    path("staff/audit/", staff.staff_audit, name="staff_audit"),
    path("staff/providers/", staff.staff_providers, name="staff_providers"),
    path("staff/reconciliation/", staff.staff_reconciliation, name="staff_reconciliation"),
    path(
        "staff/reconciliation.csv",
        staff.staff_reconciliation_csv,
        name="staff_reconciliation_csv",
    ),
    path("t/<slug:team_slug>/", include(team_patterns)),
    # Providers: callbacks (unguessable token per job) and input images (signed, expiring).
    path(
        "hooks/<str:provider_key>/<str:token>/",
        webhooks.provider_callback,
        name="provider_callback",
    ),
    path("inputs/<str:token>/", inputs.provider_input, name="provider_input"),
    path("inputs/files/<str:token>/", inputs.provider_asset, name="provider_asset"),
]
