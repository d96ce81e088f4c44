"""Fixtures for every suite."""

from tests.sampleapp import sample_app  # noqa: F401  (a fixture)
