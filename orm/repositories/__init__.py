"""ORM side: the repositories that replace the legacy SQL modules, one per module."""

from orm.repositories.base import BaseRepository
from orm.repositories.email_verification import EmailVerificationRepository
from orm.repositories.factory import (
    get_email_verification_repository,
    get_uploaded_file_repository,
    get_user_session_repository,
)
from orm.repositories.query import FILTER_OPS, Filter, FilterOp, Order, OrderSpec, SortKey
from orm.repositories.uploads import UploadedFileRepository, UploadStats
from orm.repositories.user_sessions import (
    SESSION_ORDERS,
    UPDATABLE_FIELDS,
    SessionOrder,
    UserSessionRepository,
)

__all__ = [
    "FILTER_OPS",
    "SESSION_ORDERS",
    "UPDATABLE_FIELDS",
    "BaseRepository",
    "EmailVerificationRepository",
    "Filter",
    "FilterOp",
    "Order",
    "OrderSpec",
    "SessionOrder",
    "SortKey",
    "UploadStats",
    "UploadedFileRepository",
    "UserSessionRepository",
    "get_email_verification_repository",
    "get_uploaded_file_repository",
    "get_user_session_repository",
]
