"""Compat layer: the facade functions, one module per legacy module, declared and routed."""

from compat.facades import email_verification, uploads, user_sessions

__all__ = ["email_verification", "uploads", "user_sessions"]
