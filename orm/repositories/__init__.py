"""ORM side: the repositories that replace the legacy SQL modules, one per module."""

from orm.repositories.base import BaseRepository, RowView
from orm.repositories.email_verification import (
    EmailVerificationOperations,
    EmailVerificationRepository,
    EmailVerificationRows,
)
from orm.repositories.factory import (
    get_email_verification_repository,
    get_uploaded_file_repository,
    get_user_session_repository,
)
from orm.repositories.operation import Operation, operation
from orm.repositories.query import FILTER_OPS, Filter, FilterOp, Order, OrderSpec, SortKey
from orm.repositories.uploads import (
    UploadedFileOperations,
    UploadedFileRepository,
    UploadedFileRows,
    UploadStats,
)
from orm.repositories.user_sessions import (
    SESSION_ORDERS,
    UPDATABLE_FIELDS,
    SessionOrder,
    UserSessionOperations,
    UserSessionRepository,
    UserSessionRows,
)
from orm.repositories.uuids import as_uuid

__all__ = [
    "FILTER_OPS",
    "SESSION_ORDERS",
    "UPDATABLE_FIELDS",
    "BaseRepository",
    "EmailVerificationOperations",
    "EmailVerificationRepository",
    "EmailVerificationRows",
    "Filter",
    "FilterOp",
    "Operation",
    "Order",
    "OrderSpec",
    "RowView",
    "SessionOrder",
    "SortKey",
    "UploadStats",
    "UploadedFileOperations",
    "UploadedFileRepository",
    "UploadedFileRows",
    "UserSessionOperations",
    "UserSessionRepository",
    "UserSessionRows",
    "as_uuid",
    "get_email_verification_repository",
    "get_uploaded_file_repository",
    "get_user_session_repository",
    "operation",
]
