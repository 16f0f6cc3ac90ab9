"""schemathesis against our own OpenAPI schema: every operation, authenticated as the team's
owner with a read and write token, with data generated from the schema (and data that breaks
it). No answer is a 5xx, and every answer matches what the schema documents: status, content
type and body."""

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from project.api import api
from studio.api.tokens import create_token
from tests.factories import make_job

schema = schemathesis.openapi.from_dict(api.get_openapi_schema())
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
APP = WSGIHandler()


@pytest.fixture
def member_token(personas, django_settings):
    django_settings.API_RATE_LIMIT_PER_MINUTE = 10**6
    membership = personas.membership(personas.owner)
    # Real objects for the ids schemathesis may hit: a finished and a queued job.
    make_job(personas.team, personas.member, state="succeeded", price=0)
    make_job(personas.team, personas.member, price=0)
    return create_token(membership, "schemathesis", "rw")[1]


@pytest.fixture
def django_settings(settings):
    return settings


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """As Django's test client does: a request's end must not close the test's connection."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_operation_answers_as_documented(case, member_token):
    case.call_and_validate(
        app=APP,
        base_url="http://localhost",
        headers={"Authorization": f"Bearer {member_token}"},
        checks=CHECKS,
    )
