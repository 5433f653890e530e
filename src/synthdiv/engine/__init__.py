"""Running the pipeline: the stage runner (``runner``), the checks before a run (``preflight``), cost estimates
(``estimate``, ``rates``) and adaptive rounds (``adapt``). It sits above the stages and calls them through the stage
table."""
