"""One log line per job move, naming job, team and provider; LOG_FORMAT=json makes them fields."""

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from studio.jobs.states import transition
from studio.models import Job, JobState
from tests.factories import make_job

S = JobState
ROOT = Path(__file__).resolve().parent.parent


def json_formatter():
    """The formatter LOGGING configures for LOG_FORMAT=json."""
    import logging.config

    config = {"version": 1, "formatters": {"json": settings.LOGGING["formatters"]["json"]}}
    configurator = logging.config.DictConfigurator(config)
    return configurator.configure_formatter(config["formatters"]["json"])


def test_a_move_is_one_json_line_with_job_team_and_provider(personas):
    job = make_job(personas.team, personas.member, state=S.RUNNING, provider="stability")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(json_formatter())
    logger = logging.getLogger("studio.jobs.states")
    logger.addHandler(handler)
    try:
        assert transition(job, S.RUNNING, S.FAILED, error="It broke.")
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 1
    line = lines[0]
    assert line["job"] == str(job.pk)
    assert line["team"] == personas.team.pk
    assert line["provider"] == "stability"
    assert (line["from_state"], line["to_state"]) == ("running", "failed")
    assert line["level"] == "INFO" and line["logger"] == "studio.jobs.states"
    assert line["message"] == (
        f"job {job.pk}: running → failed (team {personas.team.pk}, provider stability)"
    )


def test_logging_a_move_costs_no_query_with_the_job_in_hand(personas, caplog):
    job = make_job(personas.team, personas.member, state=S.RUNNING)
    same = make_job(personas.team, personas.member, state=S.RUNNING)
    caplog.set_level(logging.WARNING, logger="studio.jobs.states")
    with CaptureQueriesContext(connection) as silent:
        transition(job, S.RUNNING, S.CANCELED)
    caplog.set_level(logging.INFO, logger="studio.jobs.states")
    with CaptureQueriesContext(connection) as logged:
        transition(same, S.RUNNING, S.CANCELED)
    assert len(logged) == len(silent)
    assert caplog.records[-1].provider == "local" and caplog.records[-1].team == personas.team.pk

    # Only an id: one primary-key read for the line. A deferred field is never loaded for it.
    by_id = make_job(personas.team, personas.member, state=S.RUNNING)
    with CaptureQueriesContext(connection) as from_id:
        transition(str(by_id.pk), S.RUNNING, S.CANCELED)
    assert len(from_id) == len(silent) + 1
    deferred = Job.objects.only("state", "team", "provider").get(
        pk=make_job(personas.team, personas.member, state=S.RUNNING).pk
    )
    with CaptureQueriesContext(connection) as lean:
        transition(deferred, S.RUNNING, S.CANCELED)
    assert len(lean) == len(silent)
    assert caplog.records[-1].job == str(deferred.pk)


def test_log_format_json_switches_the_root_handler():
    script = (
        "import django, logging; django.setup();"
        "logging.getLogger('studio.x').info('moved', extra={'job': 'j1', 'team': 7})"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"LOG_FORMAT"}}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env | {"DJANGO_SETTINGS_MODULE": "project.settings", "LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert (line["message"], line["job"], line["team"]) == ("moved", "j1", 7)
    plain = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env | {"DJANGO_SETTINGS_MODULE": "project.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert plain.stderr.strip().splitlines()[-1] == "moved"


def test_a_bad_log_format_stops_start_up():
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=os.environ | {"DJANGO_SETTINGS_MODULE": "project.settings", "LOG_FORMAT": "xml"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "LOG_FORMAT must be text or json" in result.stderr


def test_sentry_starts_only_with_a_dsn():
    script = (
        "import django; django.setup(); import sentry_sdk; c = sentry_sdk.get_client();"
        "print(c.is_active(), c.options['send_default_pii'], c.options['environment'],"
        " c.options['traces_sample_rate'])"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
    base |= {"DJANGO_SETTINGS_MODULE": "project.settings"}

    def run(**env):
        result = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env=base | env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    assert run()[0] == "False"
    active = run(SENTRY_DSN="https://public@sentry.invalid/1", SENTRY_ENVIRONMENT="staging")
    assert active == ["True", "False", "staging", "0.0"]
