"""What AKOOL's image-to-video offers (providers.md §5), as the form and the price book see it:
the models by plan, the audio file a job may send, and AKOOL's effects (fetched and cached)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property

from django import forms
from django.conf import settings
from django.core.cache import cache

from studio.providers import akool_client as client
from studio.providers.base import AssetDraft, AssetsRefused, ProviderError
from studio.providers.params import Bool, Choice, ModelSpec, Text

log = logging.getLogger(__name__)
LABEL = client.LABEL
EFFECTS_PATH = "/image2Video/effects"

AUDIO_CODES = {"ai": 1, "upload": 2, "none": 3}
AUDIO_CHOICES = [("none", "No audio"), ("ai", "AI-generated audio"), ("upload", "Your audio file")]
LENGTHS = [("5", "5 seconds"), ("10", "10 seconds")]
MAX_AUDIO_BYTES = 20 * 1024 * 1024
AUDIO_FORMATS = "MP3, WAV, M4A/AAC or OGG"
TOO_BIG = f"The audio file must be at most 20 MB ({AUDIO_FORMATS})."

EFFECTS_TEMPLATE = "studio/_effects_gallery.html"
EFFECTS_KEY = "studio:akool:effects"
EFFECTS_LAST_KEY = "studio:akool:effects:last-good"
EFFECTS_FAILED_KEY = "studio:akool:effects:failed"
EFFECTS_FRESH = 3600  # seconds
EFFECTS_RETRY = 60  # after a failed fetch, seconds before the next attempt


def is_pro(plan: str) -> bool:
    return settings.AKOOL_PLANS.index(plan) >= settings.AKOOL_PLANS.index("pro")


# --- Models -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlanSpec(ModelSpec):
    """Image to video as one AKOOL plan allows it. Below pro the form offers neither 10 s nor
    the premium model; a request that asks for them anyway (the API, a form from before the plan
    changed) is told which plan they need, rather than a bare "must be one of"."""

    plan: str = "pro"

    def needs_pro(self, what: str) -> str:
        return f"{what} need an {LABEL} pro plan or above; ours is {self.plan}."

    @cached_property
    def form_class(self) -> type[forms.Form]:
        form = ModelSpec.form_class.func(self)
        if not is_pro(self.plan):
            field = form.base_fields["video_length"]
            message = f"Length must be 5 seconds: {self.needs_pro('10 s videos')}"
            field.error_messages = field.error_messages | {"invalid_choice": message}
        return form

    def clean(self, data) -> tuple[dict, dict[str, list[str]]]:
        premium = data.get("is_premium_model")  # not a field below pro: the form would drop it
        if not is_pro(self.plan) and forms.BooleanField(required=False).clean(premium):
            message = self.needs_pro("The premium model and its faster generation")
            return {}, {"is_premium_model": [message]}
        return super().clean(data)


def prompt_or_effect(params: dict) -> dict:
    if not params.get("prompt", "").strip() and not params.get("effect_code"):
        return {"prompt": "Describe how the picture should move, or choose an effect."}
    return {}


def image2video(plan: str) -> PlanSpec:
    """Image to video on `plan`: 10 s videos and the premium model from pro up."""
    pro = is_pro(plan)
    premium = [Bool("is_premium_model", "Premium model", help="Faster generation.")]
    return PlanSpec(
        key="image2video",
        label="Image to video",
        help="5 or 10 second videos at up to 4k, with optional audio and effects.",
        plan=plan,
        params=(
            Text("prompt", "Prompt", 1000, help="How the picture should move."),
            Text("negative_prompt", "Negative prompt", 1000, help="What to avoid."),
            Choice("resolution", "Resolution", ["720p", "1080p", "4k"], "720p"),
            Choice(
                "video_length",
                "Length",
                LENGTHS if pro else LENGTHS[:1],
                "5",
                help="" if pro else f"10 s videos need an {LABEL} pro plan or above.",
            ),
            Choice("audio_type", "Audio", AUDIO_CHOICES, "none"),
            Bool("extend_prompt", "Extend the prompt", help="AKOOL adds detail of its own."),
            *(premium if pro else []),
            Text(
                "effect_code",
                "Effect",
                64,
                help="An effect from the gallery; it takes the place of the prompt.",
            ),
        ),
        checks=(prompt_or_effect, effect_known),
    )


ADD_AUDIO = ModelSpec(
    key="add-audio",
    label="Add audio",
    help="An audio track added to a finished AKOOL video.",
    params=(
        Choice("audio_type", "Audio", AUDIO_CHOICES[1:], "ai"),
        # The source video's length: it sets the price (5 or 10 credits).
        Choice("video_length", "Length of the video", LENGTHS, "5"),
    ),
)


# --- The member's audio file ------------------------------------------------------------------
def take_audio(params: dict, files) -> list[AssetDraft]:
    """The audio file a job sends (audio_type "upload"), judged by its content and size."""
    if params.get("audio_type") != "upload":
        return []
    upload = files.get("audio") if files else None
    if upload is None:
        raise AssetsRefused({"audio": [f"Choose an audio file ({AUDIO_FORMATS}, at most 20 MB)."]})
    upload.seek(0)
    content = upload.read(MAX_AUDIO_BYTES + 1)  # one byte more tells us it is too big
    if len(content) > MAX_AUDIO_BYTES:
        raise AssetsRefused({"audio": [TOO_BIG]})
    kind = sniff_audio(content)
    if kind is None:
        message = (
            f"The audio file must be {AUDIO_FORMATS} audio of at most 20 MB; this file is none "
            "of those."
        )
        raise AssetsRefused({"audio": [message]})
    extension, content_type = kind
    return [AssetDraft("audio", content, extension, content_type)]


def sniff_audio(content: bytes) -> tuple[str, str] | None:
    """(extension, content type) of MP3, WAV, M4A/AAC or OGG audio, judged by its content."""
    head = content[:12]
    if head.startswith(b"ID3"):
        return "mp3", "audio/mpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav", "audio/wav"
    if head.startswith(b"OggS"):
        return "ogg", "audio/ogg"
    if head[4:8] == b"ftyp" and head[8:11] in (b"M4A", b"M4B"):
        return "m4a", "audio/mp4"
    if len(head) >= 2 and head[0] == 0xFF:
        if head[1] & 0xF6 == 0xF0:  # ADTS: sync, then layer 00
            return "aac", "audio/aac"
        if head[1] & 0xE0 == 0xE0 and head[1] & 0x06:  # MPEG audio frame: sync, a layer
            return "mp3", "audio/mpeg"
    return None


# --- Effects ----------------------------------------------------------------------------------
def effects() -> list[dict] | None:
    """AKOOL's effects, fetched at most once an hour; the last good list while a refresh
    fails; None when there has never been one."""
    fresh = cache.get(EFFECTS_KEY)
    if fresh is not None:
        return fresh
    last = cache.get(EFFECTS_LAST_KEY)
    if client.credentials_problem() or cache.get(EFFECTS_FAILED_KEY):
        return last
    try:
        listed = _fetch_effects()
    except ProviderError as error:
        log.warning("%s effects could not be fetched: %s", LABEL, error)
        cache.set(EFFECTS_FAILED_KEY, True, EFFECTS_RETRY)  # a form render is not a retry loop
        return last
    cache.set(EFFECTS_KEY, listed, EFFECTS_FRESH)
    cache.set(EFFECTS_LAST_KEY, listed, None)
    return listed


def effect_known(params: dict) -> dict:
    code = params.get("effect_code")
    if not code:
        return {}
    listed = effects()
    if listed is None:  # never sent blind: AKOOL would refuse an unknown code after the upload
        return {
            "effect_code": f"{LABEL}'s effects cannot be loaded just now, so this effect cannot "
            "be checked. Try again in a minute, or leave the effect empty."
        }
    codes = [effect["code"] for effect in listed]
    if code not in codes:
        return {"effect_code": f"Effect must be one of: {', '.join(codes) or 'none listed'}."}
    return {}


def effects_context() -> dict:
    """The effects gallery (templates/studio/_effects_gallery.html), which stands in for the
    effect_code field on the form."""
    listed = effects()
    context = {"template": EFFECTS_TEMPLATE, "replaces": ["effect_code"], "effects": listed or []}
    if listed is None:
        context["effects_problem"] = (
            f"{LABEL}'s effects cannot be listed right now; the prompt decides the motion."
        )
    return context


def _fetch_effects() -> list[dict]:
    answer = client.call("GET", EFFECTS_PATH)
    data = answer.get("data")
    found = data.get("result") if isinstance(data, dict) else None
    if not isinstance(found, list):
        raise ProviderError(f"{LABEL} answered without a list of effects.", permanent=False)
    listed = []
    for item in found:
        code = item.get("effect_code") if isinstance(item, dict) else None
        if isinstance(code, str) and code:
            listed.append(
                {
                    "code": code,
                    "name": client.said(item.get("name") or code, 80),
                    "logo": _link(item.get("logo")),
                    "video_url": _link(item.get("video_url")),  # its preview
                }
            )
    return listed


def _link(value) -> str:
    return value if isinstance(value, str) and value.startswith(("http://", "https://")) else ""
