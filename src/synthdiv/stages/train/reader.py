"""What later stages read of the train stage: what a variant trained on (``train/<variant>/data.json``) and
its exported model (``export/<variant>``, loaded with plain timm).
"""

from __future__ import annotations

from typing import Any

from synthdiv.core.rundir import RunDir
from synthdiv.errors import InputError, SynthdivError

PHASE1_DIR = "phase1"  # train/<variant>/phase1/: the synthetic phase of a bridged variant (checkpoints, metrics)


def read_data_info(run: RunDir, variant: str) -> dict[str, Any] | None:
    """``train/<variant>/data.json`` (what a variant trained on: counts per class, block sizes, steps per epoch,
    total steps), or None when it is absent or unreadable."""
    import json

    try:
        info = json.loads((run.train / variant / "data.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return info if isinstance(info, dict) else None


def load_export(run: RunDir, name: str) -> Any:
    """The exported variant ``export/<name>``, loaded with plain timm (what a user downloads is what is measured).

    Raises:
        InputError: The export is damaged or not a timm export (one line naming the folder and the stage to redo).
    """
    import timm


    folder = run.export / name
    try:
        return timm.create_model(f"local-dir:{folder}", pretrained=True)
    except SynthdivError:
        raise
    except Exception as exc:  # noqa: BLE001 - timm and safetensors raise many types on a damaged file
        said = (str(exc).splitlines() or [""])[0][:160]
        raise InputError(f"{folder}: not a loadable timm export ({type(exc).__name__}{': ' + said if said else ''}); "
                         "run `synthdiv train --redo`") from None
