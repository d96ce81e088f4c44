"""Fixtures for the integration suite."""

from tests.integration.runner import play  # noqa: F401  (a fixture)
