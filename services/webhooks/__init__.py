"""Outbound webhooks: endpoints admins register, signed deliveries sent by Celery tasks."""
