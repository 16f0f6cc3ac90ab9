import io
import ipaddress
import os
import socket

import pytest
from django.db import connection
from PIL import Image

pytest_plugins = ["tests.providers", "tests.browser", "tests.s3"]  # simulators', Chromium's, S3's

# Playwright's sync API runs an event loop in the test thread; Django's ORM must still be usable.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


# --- No network but this machine ------------------------------------------------------------
_real_connect = socket.socket.connect


def _local_only_connect(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        try:
            local = ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = host == "localhost"
        if not local:
            raise RuntimeError(f"A test tried to reach {host}: tests may only talk to localhost")
    return _real_connect(sock, address)


def pytest_configure(config):
    socket.socket.connect = _local_only_connect
    # Threads (the live server's, the race tests') must not keep connections past a request, or
    # the test database cannot be dropped at the end.
    from django.db import connections

    connections.settings["default"]["CONN_MAX_AGE"] = 0
    # Tasks run inline unless a test starts a real worker (see tests/worker.py).
    from django_q.conf import Conf

    Conf.SYNC = True


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, django_db_keepdb):
    """Each run gets a test database of its own (test_<NAME>_<pid>), so two runs against one
    server never share one; pytest-django drops it at the end. With --reuse-db the name stays
    fixed, or there would be nothing to reuse."""
    if not django_db_keepdb:
        from pytest_django.fixtures import _set_suffix_to_test_databases

        _set_suffix_to_test_databases(suffix=f"pid{os.getpid()}")


@pytest.fixture(scope="session", autouse=True)
def _test_database_dropped_at_the_end(django_db_setup, django_db_blocker):
    """Live-server threads can leave a PostgreSQL session open on the test database, and
    pytest-django then cannot drop it ("being accessed by other users"): end those sessions
    first, so no test database is left behind on a shared server."""
    yield
    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Every cache (login throttles, ETA medians, API rate counts) starts empty in every test.
    Without Redis the shared default is a database table: it is cleared whenever the test has
    database access (a test without any cannot have used it; a rolled-back one leaves nothing)."""
    from django.core.cache import caches
    from django.core.cache.backends.db import DatabaseCache

    def clear() -> None:
        for alias in caches:
            try:
                caches[alias].clear()
            except RuntimeError:  # pytest-django: no database access for this test (now)
                assert isinstance(caches[alias], DatabaseCache)

    clear()
    yield
    clear()


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.SCRATCH_DIR = tmp_path / "scratch"  # arriving uploads are spooled there too
    # Real hashing costs ~0.3 s a user; tests make many users and test no hashing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return settings.MEDIA_ROOT


DB_FIXTURES = {"db", "transactional_db", "django_db_blocker"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("postgres"):
            item.fixturenames.append("_needs_postgres")
        if item.get_closest_marker("django_db") or DB_FIXTURES & set(item.fixturenames):
            item.fixturenames.append("_ledger_stays_consistent")  # last in: torn down first


@pytest.fixture
def _ledger_stays_consistent(request):
    """After every test that reaches the database: the check_ledger checks must pass."""
    yield
    if "db" not in request.fixturenames and not request.node.get_closest_marker("django_db"):
        return
    from studio.billing.checks import ledger_problems

    problems = ledger_problems()
    assert not problems, "ledger problems after the test:\n" + "\n".join(problems)


@pytest.fixture
def _needs_postgres(db):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: run with DATABASE_URL=postgres://...")


# --- Personas -------------------------------------------------------------------------------
class Personas:
    """Team A with an owner, a member and a viewer; an outsider who has only their own team B."""

    def __init__(self):
        from studio.models import Membership, Role, Team, User
        from studio.teams import create_team

        self.owner = User.objects.create_user("owner@a.test", "pw-owner-123")
        self.member = User.objects.create_user("member@a.test", "pw-member-123")
        self.viewer = User.objects.create_user("viewer@a.test", "pw-viewer-123")
        self.outsider = User.objects.create_user("outsider@b.test", "pw-outsider-123")
        self.team: Team = create_team(self.owner, "Team A")
        Membership.objects.create(team=self.team, user=self.member, role=Role.MEMBER)
        Membership.objects.create(team=self.team, user=self.viewer, role=Role.VIEWER)
        self.outsider_team = create_team(self.outsider, "Team B")
        from studio.billing import ledger

        ledger.grant(self.team, 1000, actor=None, reason="Test budget")

    def membership(self, user):
        return self.team.memberships.get(user=user)


@pytest.fixture
def personas(db):
    return Personas()


@pytest.fixture
def staff(db):
    from studio.models import User

    return User.objects.create_user("staff@studio.test", "pw-staff-123", is_staff=True)


@pytest.fixture
def staff_client(client_for, staff):
    return client_for(staff)


@pytest.fixture
def client_for(client):
    """client_for(user) → a test client logged in as that user."""

    def login(user):
        client.force_login(user)
        return client

    return login


# --- Images ---------------------------------------------------------------------------------
def make_image_bytes(fmt="PNG", size=(640, 400)) -> bytes:
    """A small picture with structure (gradient and shapes), so motion is visible in the video."""
    from PIL import ImageDraw

    image = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.ellipse((w * 0.3, h * 0.3, w * 0.6, h * 0.8), fill=(220, 60, 40))
    draw.rectangle((w * 0.65, h * 0.1, w * 0.9, h * 0.4), fill=(40, 90, 220))
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture
def image_upload():
    from django.core.files.uploadedfile import SimpleUploadedFile

    def make(fmt="PNG", size=(640, 400), name=None, content=None):
        data = content if content is not None else make_image_bytes(fmt, size)
        return SimpleUploadedFile(name or f"photo.{fmt.lower()}", data, content_type="image/png")

    return make


FAST_PARAMS = {
    "duration": 1,
    "resolution": "480p",
    "aspect": "source",
    "fps": 8,
    "motion": "zoom_in",
    "strength": 5,
}


@pytest.fixture
def finished_remote_job(personas, tmp_path):
    """A Stability job whose output we already hold, ready to be copied into place."""
    import io

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from PIL import Image

    from studio.engine import RenderSettings, render_video
    from studio.models import Job, JobState
    from tests.factories import make_job

    video = tmp_path / "out.mp4"
    with Image.open(io.BytesIO(make_image_bytes())) as image:
        render_video(image, video, RenderSettings.from_mapping(FAST_PARAMS))
    job = make_job(personas.team, personas.member, state=JobState.RUNNING)
    raw = f"provider-outputs/{job.team_id}/{job.pk.hex}.mp4"
    default_storage.save(raw, ContentFile(video.read_bytes()))
    Job.objects.filter(pk=job.pk).update(
        provider="stability",
        model="stable-video-diffusion",
        output_ref=f"stored:{raw}",
        output_format="mp4",
    )
    return job
