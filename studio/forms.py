from django import forms

from studio.models import Invite, Job, Role
from studio.providers import PROVIDERS, provider_choices

DEFAULT_PROVIDER = "local"


class ProviderSelect(forms.Select):
    """Providers that cannot take jobs now are shown, disabled, with the reason."""

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        provider = PROVIDERS.get(value)
        reason = provider.unavailable_reason() if provider else ""
        if reason:
            option["attrs"]["disabled"] = True
            option["attrs"]["title"] = reason
            option["label"] = f"{label} — unavailable: {reason}"
        return option


class NewJobForm(forms.Form):
    """The new-job page: the image, provider and model, plus the chosen model's own fields."""

    image = forms.ImageField(
        required=False,  # checked by studio.uploads, which says exactly what is wrong
        widget=forms.ClearableFileInput(attrs={"accept": "image/png,image/jpeg,image/webp"}),
        help_text="PNG, JPEG or WebP.",
    )
    provider = forms.ChoiceField(
        choices=provider_choices, initial=DEFAULT_PROVIDER, widget=ProviderSelect
    )

    def __init__(self, data=None, files=None, *, initial=None, params_initial=None):
        super().__init__(data, files, initial=initial)
        chosen = data or initial or {}
        provider = PROVIDERS.get(chosen.get("provider") or "") or PROVIDERS[DEFAULT_PROVIDER]
        spec = provider.model(chosen.get("model")) or provider.models[0]
        self.provider_key, self.model_key, self.spec = provider.key, spec.key, spec
        self.model_choices = provider.model_choices()
        self.params = spec.form_class(data, initial=params_initial)
        # What the chosen model shows beside its fields: a partial template and its context
        # (Kling's motion brush, AKOOL's effects gallery).
        self.extras = provider.form_context(spec.key)
        self.replaced = frozenset(self.extras.get("replaces", ()))  # fields the extras draw

    @classmethod
    def like(
        cls, job: Job | None, provider_key: str | None = None, model_key: str | None = None
    ) -> "NewJobForm":
        """A blank form, or one pre-filled from an earlier job ("make another like this")."""
        if job is not None:
            return cls(
                initial={"provider": job.provider, "model": job.model}, params_initial=job.params
            )
        return cls(initial={"provider": provider_key or DEFAULT_PROVIDER, "model": model_key})

    def params_values(self) -> dict:
        """The parameters as the form shows them: submitted data, else initial values."""
        if self.params.is_bound:
            return self.params.data
        values = {name: self.params[name].value() for name in self.params.fields}
        return values | {"provider": self.provider_key, "model": self.model_key}

    def add_refusal(self, errors: dict[str, list[str]]) -> None:
        self.params.is_valid()  # bound to the same data: its errors show beside its own fields
        self.is_valid()
        for field, messages in errors.items():
            if field in self.params.fields:
                continue
            if field in self.fields:  # ours name the limit: said once, not beside Django's own
                self.errors.pop(field, None)
            for message in messages:
                self.add_error(field if field in self.fields else None, message)


class TeamForm(forms.Form):
    name = forms.CharField(max_length=80, label="Team name")


class InviteForm(forms.Form):
    # The form's own default (320) is longer than the column: say so here, not with a 500.
    email = forms.EmailField(
        required=False,
        max_length=Invite._meta.get_field("email").max_length,
        error_messages={
            "max_length": "An e-mail address can have at most %(limit_value)d characters "
            "(this one has %(show_value)d)."
        },
        help_text="Leave empty to make a link that anyone holding it can use once.",
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)
