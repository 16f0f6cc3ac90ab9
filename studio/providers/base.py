"""What every provider adapter offers the rest of the product."""

from datetime import timedelta

from django import forms

from studio.models import Job


def bounded_int(
    label: str, lo: int, hi: int, *, initial: int, unit: str = ""
) -> forms.IntegerField:
    """A whole-number parameter whose errors name the field and the limit it broke."""
    suffix = f" {unit}" if unit else ""
    one = suffix.removesuffix("s")  # "1 second", not "1 seconds"
    return forms.IntegerField(
        min_value=lo,
        max_value=hi,
        initial=initial,
        label=f"{label} ({lo}–{hi}{suffix})",
        error_messages={
            "min_value": f"{label} must be at least {lo}{one if lo == 1 else suffix}.",
            "max_value": f"{label} must be at most {hi}{suffix}.",
            "invalid": f"{label} must be a whole number from {lo} to {hi}{suffix}.",
            "required": f"{label} is required.",
        },
    )


class ProviderError(Exception):
    """A provider failed. `permanent` says whether trying again could help."""

    def __init__(self, message: str, *, permanent: bool):
        super().__init__(message)
        self.permanent = permanent


class Provider:
    key: str = ""
    label: str = ""
    models: tuple[tuple[str, str], ...] = ()
    params_form: type[forms.Form] = forms.Form
    deadline: timedelta = timedelta(minutes=15)

    def clean_params(self, data) -> tuple[dict, dict[str, list[str]]]:
        """Validate raw parameters: (clean params, {} ) or ({}, {field: [messages]})."""
        form = self.params_form(data)
        if form.is_valid():
            return form.cleaned_data, {}
        return {}, {field: list(errors) for field, errors in form.errors.items()}

    def sweep(self, now) -> int:
        """Periodic work for this provider's jobs (polling, reconciling); returns jobs moved."""
        return 0

    def execute(self, job: Job) -> None:
        """Move a queued job forward; called by the worker with a fresh row."""
        raise NotImplementedError
