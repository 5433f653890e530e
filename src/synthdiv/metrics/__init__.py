"""Metrics with no run behind them: accuracy and its intervals (``accuracy``), image diversity and fidelity
(``diversity``), near-duplicates (``near_duplicates``)."""
