"""Test-session configuration.

Under CI (``CI`` set, as ``.ci/run`` is run), hypothesis draws the same examples on every
run (``derandomize``), so a submission's CI result does not depend on chance; locally it
keeps exploring new examples (and remembers failures in ``.hypothesis/``).
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
