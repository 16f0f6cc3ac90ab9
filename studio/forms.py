from dataclasses import dataclass

from django import forms
from django.conf import settings
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

from studio.models import ImageUpload, Invite, Job, Role, Team
from studio.providers import PROVIDERS, provider_choices
from studio.uploads import MIN_SIDE

DEFAULT_PROVIDER = "local"


def image_limits() -> str:
    """What studio.uploads.check_image accepts, said before anyone gets it wrong."""
    limit = settings.MAX_UPLOAD_BYTES
    size = f"{round(limit / 2**20, 1):g} MB" if limit >= 2**20 else f"{round(limit / 2**10):g} KB"
    pixels = f"{settings.MAX_UPLOAD_PIXELS / 1e6:g}"
    return (
        f"PNG, JPEG or WebP, at most {size} and {pixels} megapixels, "
        f"each side at least {MIN_SIDE} pixels."
    )


@dataclass(frozen=True)
class KeptImage:
    """The image the form already holds, so the member need not choose it again: an upload kept
    after a refusal (`kept_image`), or the source job of "make another like this" (`from_job`)."""

    field: str
    value: str
    width: int
    height: int

    @property
    def is_job(self) -> bool:
        return self.field == "from_job"


class OneLoopSelect(forms.Select):
    """A select whose options are drawn in one loop of one template. Django's own select
    template includes a template per option, and another for each option's attributes: the
    gallery's three filters cost 15 % of its CPU that way."""

    template_name = "studio/widgets/select.html"

    def _render(self, template_name, context, renderer=None):
        return mark_safe(render_to_string(template_name, context))


class ProviderSelect(OneLoopSelect):
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
        widget=forms.ClearableFileInput(
            attrs={"accept": "image/png,image/jpeg,image/webp", "aria-describedby": "image-limits"}
        ),
    )
    provider = forms.ChoiceField(
        choices=provider_choices, initial=DEFAULT_PROVIDER, widget=ProviderSelect
    )

    def __init__(self, data=None, files=None, *, initial=None, params_initial=None):
        super().__init__(data, files, initial=initial)
        self.fields["image"].help_text = image_limits()  # settings may change; read them now
        self.kept: KeptImage | None = None
        self.refused_for_credits = False
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
            form = cls(
                initial={"provider": job.provider, "model": job.model}, params_initial=job.params
            )
            form.keep(job)
            return form
        return cls(initial={"provider": provider_key or DEFAULT_PROVIDER, "model": model_key})

    def params_values(self) -> dict:
        """The parameters as the form shows them: submitted data, else initial values."""
        if self.params.is_bound:
            return self.params.data
        values = {name: self.params[name].value() for name in self.params.fields}
        return values | {"provider": self.provider_key, "model": self.model_key}

    def keep(self, image: ImageUpload | Job | None) -> None:
        """Offer this image again: the page shows it and submits its id in a hidden field."""
        if isinstance(image, Job):
            if image.input_image:
                field, size = "from_job", (image.input_width, image.input_height)
                self.kept = KeptImage(field, str(image.pk), *size)
        elif image is not None:
            self.kept = KeptImage("kept_image", str(image.pk), image.width, image.height)
        else:
            self.kept = None

    def add_refusal(self, errors: dict[str, list[str]]) -> None:
        self.params.is_valid()  # bound to the same data: its errors show beside its own fields
        self.is_valid()
        # studio.uploads judged the image; Django's own check re-reads a file already read and
        # stored, so its "not an image" would be no judgement at all.
        self.errors.pop("image", None)
        self.refused_for_credits = "credits" in errors  # the price need not say it again
        for field, messages in errors.items():
            if field in self.params.fields:
                continue
            if field in self.fields:  # ours name the limit: said once, not beside Django's own
                self.errors.pop(field, None)
            for message in messages:
                self.add_error(field if field in self.fields else None, message)


class TeamForm(forms.Form):
    """A new team's name, or a new name for a team (its slug, and so its URLs, stay)."""

    name = forms.CharField(
        max_length=Team._meta.get_field("name").max_length,
        label="Team name",
        error_messages={
            "required": "A team needs a name.",
            "max_length": "A team name can have at most %(limit_value)d characters "
            "(this one has %(show_value)d).",
            "null_characters_not_allowed": "A team name cannot contain a NUL character.",
        },
    )


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
