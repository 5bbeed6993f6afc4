"""CLI commands: predict (placeholder until its issue lands)."""

from slicewise.cli import app, audit_app, data_app, model_app  # noqa: F401
