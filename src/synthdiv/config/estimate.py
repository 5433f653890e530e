"""The ``estimate`` section: prices and rates that ``synthdiv estimate`` and ``synthdiv check`` budget with.

Nothing here changes what a run makes, so no stage's fingerprint includes it.
"""

from __future__ import annotations

from pydantic import Field

from synthdiv.config._base import Section

__all__ = ["EstimateConfig"]


class EstimateConfig(Section):
    llm_price_per_million_tokens: float | None = Field(
        None, ge=0, description="price of one million LLM tokens (prompt + answer), for a paid API"
    )
    train_images_per_second: float | None = Field(
        None, gt=0, description="training throughput per GPU to assume (else a default per timm architecture)"
    )
    device: str = Field(
        "GPU", min_length=1, description="the device generate.images_per_second and train_images_per_second hold for"
    )
