from django import forms

from studio.models import Job, Role
from studio.providers import PROVIDERS, provider_choices

DEFAULT_PROVIDER = "local"


class NewJobForm(forms.Form):
    """The new-job page: the image and provider, plus the chosen provider's own fields."""

    image = forms.ImageField(
        required=False,  # checked by studio.uploads, which says exactly what is wrong
        widget=forms.ClearableFileInput(attrs={"accept": "image/png,image/jpeg,image/webp"}),
        help_text="PNG, JPEG or WebP.",
    )
    provider = forms.ChoiceField(choices=provider_choices, initial=DEFAULT_PROVIDER)

    def __init__(self, data=None, files=None, *, initial=None, params_initial=None):
        super().__init__(data, files, initial=initial)
        key = (data or {}).get("provider") or (initial or {}).get("provider") or DEFAULT_PROVIDER
        provider = PROVIDERS.get(key) or PROVIDERS[DEFAULT_PROVIDER]
        self.params = provider.params_form(data, initial=params_initial)
        self.provider_key = provider.key

    @classmethod
    def like(cls, job: Job | None, provider_key: str | None = None) -> "NewJobForm":
        """A blank form, or one pre-filled from an earlier job ("make another like this")."""
        if job is not None:
            return cls(initial={"provider": job.provider}, params_initial=job.params)
        return cls(initial={"provider": provider_key or DEFAULT_PROVIDER})

    def params_values(self) -> dict:
        """The parameters as the form shows them: submitted data, else initial values."""
        if self.params.is_bound:
            return self.params.data
        return {name: self.params[name].value() for name in self.params.fields}

    def add_refusal(self, errors: dict[str, list[str]]) -> None:
        self.params.is_valid()  # bound to the same data: its errors show beside its own fields
        self.is_valid()
        for field, messages in errors.items():
            if field in self.params.fields:
                continue
            for message in messages:
                self.add_error(field if field in self.fields else None, message)


class TeamForm(forms.Form):
    name = forms.CharField(max_length=80, label="Team name")


class InviteForm(forms.Form):
    email = forms.EmailField(
        required=False, help_text="Leave empty to make a link that anyone holding it can use once."
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)
