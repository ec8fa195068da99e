"""The moderation engine: normalise → filters → policy, pure (no Celery, Flask, SQLAlchemy, Redis)."""
