"""The run machinery every stage shares: the run directory and its artifacts (``rundir``), the artifact schemas,
the stage table (``pipeline``), stage status and fingerprints (``status``), the writer lock and ``--redo``
(``redo``)."""
