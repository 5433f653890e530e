"""The report stage: ``report/index.html``, one self-contained page of results, samples, scores and provenance."""
