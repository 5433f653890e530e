"""synthdiv: diversify, don't fine-tune."""
__version__ = "0.1.0"
