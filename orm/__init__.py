"""ORM side: SQLAlchemy 2 models and repositories that replace the legacy SQL."""
