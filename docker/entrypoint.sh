#!/bin/sh
# web: migrate, then serve with gunicorn. worker: run django-q2's cluster. engine: the job engine
# loop (provider submits and polls). Anything else runs as is.
set -e
case "$1" in
  web)
    python manage.py migrate --noinput
    exec gunicorn project.wsgi --bind 0.0.0.0:8000 --workers "${WEB_CONCURRENCY:-3}" \
      --access-logfile - --timeout 60
    ;;
  worker)
    exec python manage.py qcluster
    ;;
  engine)
    exec python manage.py run_engine
    ;;
  *)
    exec "$@"
    ;;
esac
