"""The ``publish`` section: what a published dataset folder states about itself (``synthdiv publish``).

The images' terms come from the generator's license and the prompts' from the LLM's; synthdiv cannot know them, so
the card's license is ``other`` until the config names one (a Hugging Face license id such as ``cc-by-4.0`` or
``openrail++``), and the card says which licenses the user stated.
"""

from __future__ import annotations

from pydantic import Field

from synthdiv.config._base import Section

__all__ = ["PublishConfig"]


class PublishConfig(Section):
    name: str | None = Field(None, description="the dataset's name on its card (default: the output folder's name)")
    description: str | None = Field(None, description="a sentence on the card and in croissant.json")
    license: str = Field(
        "other", description="the dataset's license as a Hugging Face license id; 'other' until you have checked the "
        "generator's and the LLM's licenses")
    license_name: str | None = Field(None, description="with license 'other': a short name for the terms")
    license_link: str | None = Field(None, description="with license 'other': where the terms are written")
    generator_license: str | None = Field(None, description="the text-to-image model's license, e.g. "
                                          "creativeml-openrail-m")
    llm_license: str | None = Field(None, description="the LLM's license (its prompts are part of the recipe)")
    creator: str | None = Field(None, description="who publishes the dataset (a person or organisation)")
    url: str | None = Field(None, description="where the dataset lives (a Hub repository's URL)")
