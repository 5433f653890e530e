"""The disambiguate stage: every class gets one unambiguous description that all of its prompts use
(``classes.resolved.jsonl``). The method: :mod:`synthdiv.stages.disambiguate.stage`."""
