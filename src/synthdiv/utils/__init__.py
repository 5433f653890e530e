"""Plain helpers that know no stage and no model: atomic I/O (``io``), digests (``hashing``), devices, progress,
logs, names, human-readable numbers (``humanize``) and the one image decoder policy (``decode``)."""
