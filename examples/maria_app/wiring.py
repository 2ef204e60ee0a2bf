"""Example application: the services an app runs with, kept on the Flask app for its routes."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import Flask, current_app

from services import CodeSender, HealthService, SessionService, UploadService, VerificationService

__all__ = ["Services", "current_services", "install"]

_EXTENSION = "maria_services"


@dataclass(frozen=True, slots=True)
class Services:
    """What the routes may call; tests and other deployments pass their own."""

    sessions: SessionService = field(default_factory=SessionService)
    verification: VerificationService = field(default_factory=VerificationService)
    uploads: UploadService = field(default_factory=UploadService)
    health: HealthService = field(default_factory=HealthService)

    @classmethod
    def build(cls, sender: CodeSender | None = None) -> Services:
        """The default services; ``sender`` delivers verification codes (default: none)."""
        return cls(verification=VerificationService(sender))


def install(app: Flask, services: Services) -> None:
    """Make ``services`` the ones this app's routes call."""
    app.extensions[_EXTENSION] = services


def current_services() -> Services:
    """The running application's services (inside a request)."""
    found: Services = current_app.extensions[_EXTENSION]
    return found
