"""Settings shared by every test directory of the workspace."""

import os

from hypothesis import HealthCheck, settings

# Shared machines are noisy: no per-example deadline. CI runs "default";
# `nox -s slow` sets HYPOTHESIS_PROFILE=long to dig deeper.
settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", parent=settings.get_profile("default"), max_examples=2_000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
