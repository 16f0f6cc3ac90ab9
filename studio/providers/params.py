"""Parameter declarations: one list per provider model, from which the new-job form (and the API
schema) is generated, so a documented limit is written once and every refusal names it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django import forms

# Units as a page writes them after a number (the form's limits keep the long word).
SHORT_UNITS = {"seconds": " s", "%": "%"}


def _bound(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Param:
    """One parameter of a provider model. `kind` is int, float, choice, bool or text."""

    name: str
    label: str
    kind: str
    default: Any = None
    lo: float | None = None
    hi: float | None = None
    choices: tuple[tuple[str, str], ...] = ()
    help: str = ""
    required: bool = False
    max_length: int = 500
    unit: str = ""

    def form_field(self) -> forms.Field:
        label, unit = self.label, f" {self.unit}" if self.unit else ""
        limits = f"{_bound(self.lo)}–{_bound(self.hi)}{unit}"
        common = {"required": self.required, "initial": self.default, "help_text": self.help}
        if self.kind in ("int", "float"):
            whole = self.kind == "int"
            kind = forms.IntegerField if whole else forms.FloatField
            return kind(
                min_value=self.lo,
                max_value=self.hi,
                label=f"{label} ({limits})",
                error_messages={
                    "min_value": f"{label} must be at least {_bound(self.lo)}{unit}.",
                    "max_value": f"{label} must be at most {_bound(self.hi)}{unit}.",
                    "invalid": f"{label} must be a {'whole ' * whole}number from {limits}.",
                    "required": f"{label} is required.",
                },
                **common,
            )
        if self.kind == "choice":
            allowed = ", ".join(value for value, _ in self.choices)
            return forms.ChoiceField(
                choices=self.choices,
                label=label,
                error_messages={
                    "invalid_choice": f"{label} must be one of: {allowed}.",
                    "required": f"{label} is required.",
                },
                **common,
            )
        if self.kind == "bool":
            return forms.BooleanField(label=label, **common | {"required": False})
        if self.kind == "text":
            return forms.CharField(
                max_length=self.max_length,
                label=label,
                widget=forms.Textarea(attrs={"rows": 2}) if self.max_length > 200 else None,
                error_messages={
                    "max_length": f"{label} must be at most {self.max_length} characters.",
                    "required": f"{label} is required.",
                    "null_characters_not_allowed": f"{label} cannot contain NUL characters.",
                },
                **common,
            )
        raise ValueError(f"unknown parameter kind {self.kind!r}")

    def display(self, value) -> str:
        """The value as the page shows it beside the label: the choice's label, a number with
        its unit ("5 s", "50%"), Yes or No."""
        if self.kind == "choice":
            return dict(self.choices).get(value, str(value))
        if self.kind == "bool":
            return "Yes" if value else "No"
        if self.kind in ("int", "float") and isinstance(value, int | float):
            unit = SHORT_UNITS.get(self.unit, f" {self.unit}" if self.unit else "")
            return f"{_bound(value)}{unit}"
        return str(value)

    def schema(self) -> dict:
        """The JSON-schema view of this parameter (for the API and documentation)."""
        types = {"int": "integer", "float": "number", "choice": "string", "bool": "boolean"}
        out: dict[str, Any] = {"type": types.get(self.kind, "string"), "title": self.label}
        if self.lo is not None:
            out["minimum"] = self.lo
        if self.hi is not None:
            out["maximum"] = self.hi
        if self.choices:
            out["enum"] = [value for value, _ in self.choices]
        if self.kind == "text":
            out["maxLength"] = self.max_length
        if self.default is not None:
            out["default"] = self.default
        if self.help:
            out["description"] = self.help
        return out


def Int(name, label, lo, hi, default, **more) -> Param:  # noqa: N802 - reads like a type
    return Param(name, label, "int", default, lo=lo, hi=hi, **more)


def Float(name, label, lo, hi, default, **more) -> Param:  # noqa: N802
    return Param(name, label, "float", default, lo=float(lo), hi=float(hi), **more)


def Choice(name, label, choices, default, **more) -> Param:  # noqa: N802
    pairs = tuple((c, c) if isinstance(c, str) else c for c in choices)
    return Param(name, label, "choice", default, choices=pairs, **more)


def Bool(name, label, default=False, **more) -> Param:  # noqa: N802
    return Param(name, label, "bool", default, **more)


def Text(name, label, max_length, default="", **more) -> Param:  # noqa: N802
    return Param(name, label, "text", default, max_length=max_length, **more)


@dataclass(frozen=True)
class ModelSpec:
    """A model a provider offers and the parameters it takes."""

    key: str
    label: str
    params: tuple[Param, ...] = field(default_factory=tuple)
    help: str = ""
    # Rules across fields: each takes the clean params and returns {field: message} for breaches.
    checks: tuple = ()

    @cached_property
    def form_class(self) -> type[forms.Form]:
        fields = {p.name: p.form_field() for p in self.params}
        return type(f"{self.key.title().replace('-', '')}Params", (_ParamsForm,), fields)

    def clean(self, data) -> tuple[dict, dict[str, list[str]]]:
        """(clean params, {}) or ({}, {field: [messages]}), each message naming field and limit."""
        # A parameter left out takes its documented default (an API caller sends only what it
        # changes; the form always sends every field). Booleans all default to off, so an
        # unticked box and an absent field mean the same.
        values = {p.name: data.get(p.name, p.default) for p in self.params}
        form = self.form_class(values)
        if not form.is_valid():
            return {}, {name: list(errors) for name, errors in form.errors.items()}
        errors = {}
        for check in self.checks:
            errors |= {name: [message] for name, message in check(form.cleaned_data).items()}
        return ({}, errors) if errors else (form.cleaned_data, {})

    def describe(self, values: dict) -> list[tuple[str, str]]:
        """(label, value) for each parameter a job was given, in the form's order, as a person
        reads them: "Duration", "5 s". Parameters left empty are left out."""
        return [
            (p.label, p.display(values[p.name]))
            for p in self.params
            if values.get(p.name) not in (None, "")
        ]

    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params}


class _ParamsForm(forms.Form):
    def clean(self):
        data = super().clean()
        for name, value in data.items():
            if isinstance(value, float) and not math.isfinite(value):  # belt and braces
                self.add_error(name, f"{self.fields[name].label} must be a finite number.")
        return data
