"""The disambiguate stage: every class gets one unambiguous description that all of its prompts use.

``resolve_classes(cfg, run)`` is the stage (called by :mod:`synthdiv.stages`); ``disambiguation_table(cfg)``
renders its output for ``synthdiv show disambiguation``. See :mod:`synthdiv.disambiguate.stage` for the method.
"""

from __future__ import annotations

import logging

from synthdiv.disambiguate.reader import read_resolved
from synthdiv.disambiguate.stage import resolve_classes
from synthdiv.disambiguate.table import disambiguation_table

logger = logging.getLogger(__name__)

__all__ = ["resolve_classes", "disambiguation_table", "read_resolved"]
