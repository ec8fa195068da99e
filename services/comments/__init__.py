"""The comments domain: articles, comments, decisions. Knows nothing of Flask or Celery."""
