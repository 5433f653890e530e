"""The embedded SmolLM2 GGUF behind llama-cpp-python's OpenAI-compatible server, on a free loopback port.

A real server for the openai backend's tests and benchmarks (and for trying that backend without a GPU server):
:func:`serve_embedded` starts it, waits until ``/v1/models`` answers, yields the base URL and stops it on exit.
llama-cpp-python is a dev dependency (``make dev`` builds it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from synthdiv.models.embedded import smollm2_gguf

logger = logging.getLogger(__name__)

__all__ = ["serve_embedded"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve_embedded(log: Path, threads: int = 2, startup_s: float = 300, n_ctx: int = 2048) -> Iterator[str]:
    """Serve the embedded SmolLM2 with ``llama_cpp.server``; yields its base URL (``http://127.0.0.1:PORT/v1``).

    Args:
        log: The server's output goes here (its tail is in the error when it does not start).
        threads: CPU threads of the server.
        startup_s: How long to wait for it to answer.
        n_ctx: Context window.

    Raises:
        RuntimeError: The server exited or did not answer within ``startup_s``.
    """
    import httpx


    port = _free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf()), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(threads)]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama_cpp.server did not start in {startup_s:.0f}s: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
