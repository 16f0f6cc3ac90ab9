#!/bin/sh
# web: migrate, then serve with gunicorn. worker: run django-q2's cluster. Anything else runs as is.
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
  *)
    exec "$@"
    ;;
esac
