"""gunicorn settings for the example application (read by ``gunicorn -c``).

Start from the repository root, against a database migrated to Alembic head::

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/maria \\
        .venv/bin/gunicorn -c examples/maria_app/gunicorn.conf.py 'examples.maria_app:create_app()'

``--preload`` (or ``preload_app = True``) is safe: the factory connects to
nothing, and the data layer rebuilds its engine in each forked worker.
"""

import os

from examples.maria_app.serving import post_fork, worker_exit  # noqa: F401  (server hooks)

bind = os.environ.get("MARIA_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
# Sync workers: each request runs on its worker's main thread, and the data
# layer's pool (5 connections + 10 overflow per process) is never short.
worker_class = "sync"
timeout = 30
graceful_timeout = 10
# No access log: its default format starts with the client's IP address, which
# is personal data. Enable it with a format without %(h)s if you need one.
accesslog = None
