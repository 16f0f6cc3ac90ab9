"""Faithful simulators of the providers' documented HTTP APIs, served for real on localhost.

    with StabilitySimulator("key", time_scale=0.01) as sim:
        sim.plan_next(outcome="filtered")
        ...  # point the product's Stability base URL at sim.base_url
        assert sim.violations == []

Run both for a person to watch: `python -m tests.simulators --help`.
"""

from .aimlapi import AimlApiSimulator, AimlPlan
from .aimlapi import Generation as AimlGeneration
from .akool import AkoolPlan, AkoolSimulator
from .common import Plan, RequestRecord, Simulator, sample_gif, sample_mp4
from .modelslab import Job, ModelsLabSimulator, WebhookDelivery
from .stability import Generation, StabilitySimulator

__all__ = [
    "AkoolPlan",
    "AkoolSimulator",
    "AimlApiSimulator",
    "AimlGeneration",
    "AimlPlan",
    "Generation",
    "Job",
    "ModelsLabSimulator",
    "Plan",
    "RequestRecord",
    "Simulator",
    "StabilitySimulator",
    "WebhookDelivery",
    "sample_gif",
    "sample_mp4",
]
