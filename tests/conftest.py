"""Test-wide settings: property tests are reproducible in CI (CI=true) and explore freely elsewhere."""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
