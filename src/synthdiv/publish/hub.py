"""``publish --to-hub REPO``: the published folder uploaded to a Hugging Face dataset repository.

Through ``huggingface_hub`` (``pip install synthdiv[publish]``): ``HfApi.create_repo`` (a dataset repository, kept when
it exists) then ``HfApi.upload_folder``. The token is the hub's own: ``HF_TOKEN`` or the token store of ``hf auth
login``; without one nothing is sent and the error says how to log in. The repository's card is the folder's
README.md, whose YAML header the Hub reads (license, task, the WebDataset files for its viewer).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from synthdiv.errors import ConfigError, InputError, MissingDependencyError

__all__ = ["check_repo", "hub_token", "push"]

_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")


def check_repo(repo: str) -> str:
    """``repo`` when it reads as ``owner/name``.

    Raises:
        ConfigError: It does not.
    """
    if not _REPO.fullmatch(repo) or ".." in repo or repo.endswith((".git", ".")):
        raise ConfigError(f"--to-hub: {repo!r} is not a repository id; expected owner/name (e.g. me/my-synthetic-set)")
    return repo


def _hub() -> Any:
    try:
        import huggingface_hub
    except ImportError:
        raise MissingDependencyError("--to-hub needs huggingface_hub: pip install 'synthdiv[publish]'") from None
    return huggingface_hub


def hub_token(repo: str) -> str:
    """The Hugging Face token configured on this machine (``HF_TOKEN`` or the hub's token store).

    Raises:
        InputError: None is configured.
    """
    token = _hub().get_token()
    if not token:
        raise InputError(f"--to-hub {repo}: no Hugging Face token; set HF_TOKEN or run `hf auth login`, then publish "
                         "again")
    return token


def push(folder: Path, repo: str, token: str, private: bool | None = None) -> str:
    """Upload ``folder`` to the dataset repository ``repo``; returns the repository's URL."""
    hub = _hub()
    api = hub.HfApi(token=token)
    url = api.create_repo(repo, repo_type="dataset", exist_ok=True, private=private)
    api.upload_folder(repo_id=repo, folder_path=str(folder), repo_type="dataset",
                      commit_message=f"synthdiv publish: {folder.name}")
    return str(url)
