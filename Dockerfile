# One image, four roles: `release` (migrations, once per release, before the others start),
# `web` (gunicorn, the default), `worker` (django-q2's qcluster) or `engine` (the job engine loop).
#   docker build -t studio .
#   docker run -e SECRET_KEY=... -e DATABASE_URL=postgres://... studio release                      # once
#   docker run -e SECRET_KEY=... -e DATABASE_URL=postgres://... -e ALLOWED_HOSTS=... studio          # web
#   docker run -e SECRET_KEY=... -e DATABASE_URL=postgres://... studio worker                       # worker
#   docker run -e SECRET_KEY=... -e DATABASE_URL=postgres://... studio engine                       # engine

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /venv
# Exactly the locked packages, each checked against its hash (bin/lock refreshes the lock), then
# the project itself without resolving anything again.
COPY requirements.lock ./
RUN /venv/bin/pip install --require-hashes -r requirements.lock
COPY pyproject.toml ./
COPY project ./project
COPY studio ./studio
RUN /venv/bin/pip install --no-deps --no-build-isolation .

FROM python:3.11-slim-bookworm AS runtime
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 DEBUG=false \
    MEDIA_ROOT=/data/media STATIC_ROOT=/app/static-root
RUN useradd --create-home --uid 10001 studio && mkdir -p /data/media && chown studio /data/media
COPY --from=build /venv /venv
WORKDIR /app
COPY manage.py ./
COPY project ./project
COPY studio ./studio
COPY templates ./templates
COPY static ./static
COPY docker/entrypoint.sh /entrypoint.sh
# collectstatic needs settings that start; these throwaway values never reach a running container.
RUN SECRET_KEY=build-only ALLOWED_HOSTS=build python manage.py collectstatic --noinput \
    && chown -R studio /app
USER studio
EXPOSE 8000
VOLUME ["/data/media"]
ENTRYPOINT ["/entrypoint.sh"]
CMD ["web"]
