"""Fixtures of the quality tests: the generation tests' tiny diffusion pipeline."""

from tests.generate.conftest import tiny_model_dir  # noqa: F401  (a fixture, used by name)
