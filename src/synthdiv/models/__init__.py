"""The model backends, each a registry of named implementations (see :mod:``synthdiv.registry``): LLMs (``llm``),
image-text scorers (``clip``), captioners (``captions``), text-to-image generators (``generators``), and the offline
defaults behind ``model: embedded`` (``embedded``). Nothing here knows a stage or a run directory."""
