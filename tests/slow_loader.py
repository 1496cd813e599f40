"""A model loader for worker processes that takes its time first, as a big model on a slow disk does."""

from __future__ import annotations

import os
import time


def load_model(model_dir, competition, **kw):
    time.sleep(float(os.environ.get("SLOW_LOADER_S", "60")))
    from subnet.hub.loading import load_model as real

    return real(model_dir, competition, **kw)
