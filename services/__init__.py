"""Triage: comment moderation for health publishers."""
