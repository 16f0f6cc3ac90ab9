#!/bin/sh
# release: migrate (and make any cache table), once per release, before web/worker/engine start;
# never in the web start-up, so replicas never race to migrate. web: gunicorn, threads per worker
# (gthread), so a slow client holds one thread, not a whole worker. worker: django-q2's cluster.
# engine: the job engine loop (provider submits and polls). Anything else runs as is.
# Each role is exec'd, so `docker stop`'s SIGTERM reaches the process itself, which stops gently:
# gunicorn finishes its requests (--graceful-timeout), qcluster its tasks, run_engine its calls.
set -e
case "$1" in
  release)
    python manage.py migrate --noinput
    # The shared cache table is made by a migration; this is a no-op then, and with Redis.
    exec python manage.py createcachetable
    ;;
  web)
    exec gunicorn project.wsgi --bind 0.0.0.0:8000 --workers "${WEB_CONCURRENCY:-3}" \
      --worker-class gthread --threads "${WEB_THREADS:-8}" \
      --timeout 60 --graceful-timeout 25 --keep-alive 5 --access-logfile -
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
