"""Publishing a finished run as a dataset others can find, load, trust and re-create (``synthdiv publish``).

One module per job: :mod:`~synthdiv.publish.layout` (the folder's paths), :mod:`~synthdiv.publish.views` (which
images, and their filter flags), :mod:`~synthdiv.publish.folder` (the shards, linked or rewritten),
:mod:`~synthdiv.publish.marking` (the XMP synthetic-media marking), :mod:`~synthdiv.publish.metadata` (per-image
Parquet), :mod:`~synthdiv.publish.recipe`, :mod:`~synthdiv.publish.card` (README.md),
:mod:`~synthdiv.publish.croissant`, :mod:`~synthdiv.publish.hub` (``--to-hub``), and
:mod:`~synthdiv.publish.build`, which runs them. The package sits beside the engine: it reads the stages' readers,
and nothing below it imports it. docs/publishing.md describes the folder.
"""

from synthdiv.publish.layout import PublishedDir

__all__ = ["PublishedDir"]
