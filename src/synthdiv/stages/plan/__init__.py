"""The plan stage: each planned image's prompt, seed, shard and image id -> ``plan.parquet`` (budgets, ids,
adaptive rounds and image-to-image rows)."""
