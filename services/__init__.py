"""Service layer: the application's business rules, on top of the compat facade (never SQL).

Routes call these services; the services call only ``compat``'s facade
modules, and group calls that must be atomic in ``compat.transaction()``.
"""

from services.email_verification import (
    CheckResult,
    CodeSender,
    DiscardingSender,
    IssuedCode,
    VerificationService,
)
from services.errors import (
    AlreadyVerified,
    CodeExpired,
    DuplicateUpload,
    InvalidInput,
    NoCodeIssued,
    NoEmailToVerify,
    ResendLimitReached,
    ServiceError,
    SessionAlreadyCompleted,
    SessionNotFound,
    TooManyAttempts,
)
from services.health import HealthService
from services.uploads import UploadService
from services.user_sessions import Page, SessionService

__all__ = [
    "AlreadyVerified",
    "CheckResult",
    "CodeExpired",
    "CodeSender",
    "DiscardingSender",
    "DuplicateUpload",
    "HealthService",
    "InvalidInput",
    "IssuedCode",
    "NoCodeIssued",
    "NoEmailToVerify",
    "Page",
    "ResendLimitReached",
    "ServiceError",
    "SessionAlreadyCompleted",
    "SessionNotFound",
    "SessionService",
    "TooManyAttempts",
    "UploadService",
    "VerificationService",
]
