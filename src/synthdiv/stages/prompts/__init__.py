"""The prompts stage: diverse contexts (CD) and styles (SD) from the LLM, composed into ``prompts.parquet`` and
``styles.json``."""
