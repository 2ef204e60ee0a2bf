"""Example Flask application: HTTP routes over the services, which use the compat facade.

Start it under gunicorn (see README.md in this folder)::

    DATABASE_URL=... .venv/bin/gunicorn -c examples/maria_app/gunicorn.conf.py \\
        'examples.maria_app:create_app()'
"""

from examples.maria_app.app import create_app
from examples.maria_app.wiring import Services

__all__ = ["Services", "create_app"]
