"""Example application: the factory, the one place that builds the app and wires its services."""

from __future__ import annotations

from flask import Flask

from examples.maria_app import errors, routes
from examples.maria_app.wiring import Services, install

__all__ = ["create_app"]


def create_app(services: Services | None = None) -> Flask:
    """Build the application. Nothing connects here: the data layer connects on first use.

    That keeps the factory safe under ``gunicorn --preload``: the master builds
    the app, and each forked worker opens its own connections.
    """
    app = Flask(__name__)
    install(app, services or Services.build())
    app.register_blueprint(routes.blueprint)
    errors.register(app)
    return app
