from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import Count

from studio.billing.staff import RULE_FIELDS, record
from studio.models import (
    AuditEntry,
    BudgetWarning,
    CreditAccount,
    Invite,
    Job,
    LedgerEntry,
    Membership,
    PriceBookVersion,
    PriceRule,
    ProviderAccount,
    ProviderIncident,
    Team,
    User,
)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "first_name", "last_name", "is_staff", "is_active"]
    search_fields = ["email", "first_name", "last_name"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Personal", {"fields": ["first_name", "last_name"]}),
        (
            "Permissions",
            {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]},
        ),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "is_personal", "created_at"]
    search_fields = ["name", "slug"]
    inlines = [MembershipInline]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "team", "provider", "state", "progress", "created_at"]
    list_filter = ["state", "provider"]
    search_fields = ["id", "provider_job_id", "team__name"]
    raw_id_fields = ["team", "creator"]

    # State and price change only through the state machine, which settles credits with them.
    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


@admin.register(Invite)
class InviteAdmin(admin.ModelAdmin):
    list_display = [
        "team",
        "email",
        "role",
        "created_at",
        "expires_at",
        "accepted_at",
        "revoked_at",
    ]


# --- Credits ----------------------------------------------------------------------------------
# Credits move only through studio.billing (the staff pages, `grant_credits`), which keeps the
# ledger, the cached accounts and the audit log in step; the admin only shows them.
class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(CreditAccount)
class CreditAccountAdmin(admin.ModelAdmin):
    """The figures mirror the ledger and are read-only; the cap and warning level may change."""

    list_display = ["team", "balance", "held", "available", "monthly_cap", "low_balance_level"]
    list_select_related = ["team"]
    search_fields = ["team__name", "team__slug"]
    fields = ["team", "balance", "held", "available", "monthly_cap", "low_balance_level"]
    readonly_fields = ["team", "balance", "held", "available"]

    @admin.display(description="available")
    def available(self, account):
        return account.available

    def has_add_permission(self, request):
        return False  # every team gets its account when it is made

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        # Only the edited fields: a whole-row save would write back balance and held as they were
        # when the form was loaded, undoing any credits moved since.
        changed = [name for name in form.changed_data if name not in self.readonly_fields]
        if not changed:
            return
        before = dict(CreditAccount.objects.filter(pk=obj.pk).values(*changed).get())
        CreditAccount.objects.filter(pk=obj.pk).update(
            **{name: getattr(obj, name) for name in changed}
        )
        after = {name: getattr(obj, name) for name in changed}
        record(
            request.user,
            "credits.limits",
            obj.team,
            reason="Django admin",
            before=before,
            after=after,
        )


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "team", "kind", "amount", "provider", "member", "actor", "reason"]
    list_filter = ["kind", "provider"]
    list_select_related = ["team", "member", "actor"]
    search_fields = ["team__name", "team__slug", "reason", "job__id"]
    date_hierarchy = "created_at"


class PriceRuleInline(admin.TabularInline):
    model = PriceRule
    extra = 0
    can_delete = False
    fields = list(RULE_FIELDS)
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(PriceBookVersion)
class PriceBookVersionAdmin(ReadOnlyAdmin):
    """Read-only: prices change through the staff price page, which makes a new version."""

    list_display = ["__str__", "created_at", "created_by", "note", "rule_count"]
    list_select_related = ["created_by"]
    inlines = [PriceRuleInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(rule_count=Count("rules"))

    @admin.display(description="rules", ordering="rule_count")
    def rule_count(self, version):
        return version.rule_count


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor", "action", "target", "reason"]
    list_filter = ["action"]
    list_select_related = ["actor"]
    search_fields = ["target", "reason", "actor__email"]
    date_hierarchy = "created_at"


@admin.register(BudgetWarning)
class BudgetWarningAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "team", "period", "key", "message"]
    list_filter = ["period"]
    list_select_related = ["team"]
    search_fields = ["team__name", "message"]


# --- Providers --------------------------------------------------------------------------------
# Written only by the job engine (rate limits, incidents); staff read them here and on
# /staff/providers/.
@admin.register(ProviderAccount)
class ProviderAccountAdmin(ReadOnlyAdmin):
    list_display = ["provider", "fingerprint", "paused_until", "last_error_at", "last_success_at"]
    list_filter = ["provider"]
    search_fields = ["fingerprint", "last_error"]


@admin.register(ProviderIncident)
class ProviderIncidentAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "provider", "kind", "job", "detail"]
    list_filter = ["kind", "provider"]
    list_select_related = ["job"]
    raw_id_fields = ["job"]
    search_fields = ["job__id", "detail", "job__team__name"]
    date_hierarchy = "created_at"
