"""Captions: the embedded tiny random captioner (a real VisionEncoderDecoder; its captions are gibberish), the cache by
(captioner, image bytes), bad files, and the OpenAI-compatible backend's request (images as data URLs)."""

from __future__ import annotations

import json
import shutil

import httpx
import pytest
from PIL import Image

from synthdiv.config.models import CaptionerSpec
from synthdiv.errors import InputError, UnknownBackendError
from synthdiv.models.captions import caption_files, create_captioner, list_captioners
from synthdiv.models.captions.cache import CaptionCache
from tests.conftest import SMOKE_DATA


@pytest.fixture(scope="module")
def captioner():
    return create_captioner(CaptionerSpec(model="embedded", device="cpu", options={"max_new_tokens": 6}))


def _images(tmp_path, n=3):
    files = sorted((SMOKE_DATA / "train" / "bag").iterdir())[:n]
    out = []
    for f in files:
        shutil.copy(f, tmp_path / f.name)
        out.append(tmp_path / f.name)
    return out


def test_registry_lists_the_builtins_and_names_the_field():
    assert list_captioners() == ["openai", "transformers"]
    with pytest.raises(UnknownBackendError, match="models.captioner.backend: unknown captioner backend 'blip'"):
        create_captioner(CaptionerSpec(backend="blip"))


def test_embedded_captioner_is_deterministic_text(captioner, tmp_path):
    paths = _images(tmp_path)
    images = [Image.open(p) for p in paths]
    first = captioner.caption(images)
    assert len(first) == 3 and all(isinstance(c, str) and c for c in first)
    assert captioner.caption(images[:1]) == first[:1]  # greedy: independent of the batch
    assert captioner.captioner_id == "transformers:embedded@main"


def test_captions_are_cached_by_model_and_image_bytes(captioner, tmp_path, monkeypatch):
    paths = _images(tmp_path)
    cache = tmp_path / "cache"
    first = caption_files(captioner, paths, cache)
    assert len(list(cache.rglob("*.json"))) == 3

    def boom(images):
        raise AssertionError("a cached image was captioned again")

    monkeypatch.setattr(captioner, "caption", boom)
    moved = tmp_path / "moved.png"
    shutil.copy(paths[0], moved)
    assert caption_files(captioner, [moved, *paths[1:]], cache) == first  # keyed by bytes, not by path
    monkeypatch.undo()
    Image.new("RGB", (28, 28), (250, 0, 0)).save(paths[0])  # an edited image is captioned again
    assert len(caption_files(captioner, paths, cache)) == 3 and len(list(cache.rglob("*.json"))) == 4
    other = CaptionCache(cache, "transformers:other@main")
    assert other.get(json.loads(next(cache.rglob("*.json")).read_text())["image"]) is None


def test_a_missing_or_broken_file_is_one_line_naming_it(captioner, tmp_path):
    with pytest.raises(InputError, match="nope.png: cannot read the image to caption"):
        caption_files(captioner, [tmp_path / "nope.png"], tmp_path / "cache")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(InputError, match="bad.png: cannot read the image to caption"):
        caption_files(captioner, [bad], tmp_path / "cache")


def test_openai_captioner_sends_the_image_as_a_data_url(tmp_path, monkeypatch):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        return httpx.Response(200, json={"choices": [{"message": {"content": " a bag on a table "}}]})

    captioner = create_captioner(CaptionerSpec(backend="openai", model="llava", options={"max_retries": 0}))
    monkeypatch.setattr(captioner.llm, "_http", lambda: httpx.Client(transport=httpx.MockTransport(handler)))
    assert caption_files(captioner, _images(tmp_path, 2)) == ["a bag on a table"] * 2
    parts = seen[0]["messages"][0]["content"]
    assert parts[1]["image_url"]["url"].startswith("data:image/jpeg;base64,") and seen[0]["temperature"] == 0.0
    assert seen[0]["model"] == "llava" and "response_format" not in seen[0]


def test_openai_captioner_keeps_a_batch_in_flight_together_and_in_order(tmp_path, monkeypatch):
    import threading

    lock, gated, arrivals = threading.Lock(), [False], [0]
    gate = threading.Barrier(3, timeout=30)  # batched: the first three requests must be in flight at once to pass

    def handler(request: httpx.Request) -> httpx.Response:
        url = json.loads(request.content)["messages"][0]["content"][1]["image_url"]["url"]
        with lock:
            arrivals[0] += 1
            wait = gated[0] and arrivals[0] <= 3
        if wait:
            gate.wait()
        return httpx.Response(200, json={"choices": [{"message": {"content": f"image {len(url)}"}}]})

    spec = CaptionerSpec(backend="openai", model="llava", options={"max_retries": 0, "concurrency": 3})
    captioner = create_captioner(spec)
    monkeypatch.setattr(captioner.llm, "_http", lambda: httpx.Client(transport=httpx.MockTransport(handler)))
    images = [Image.new("RGB", (8 + 8 * i, 8), (40 * i, 0, 0)) for i in range(5)]
    one_by_one = [captioner.caption([im])[0] for im in images]
    gated[0], arrivals[0] = True, 0
    assert captioner.caption(images) == one_by_one  # in order, with up to concurrency requests at once


def test_a_decompression_bomb_is_refused_under_the_decoder_policy(captioner, tmp_path):
    from PIL import Image

    from synthdiv.utils.decode import DEFAULT_MAX_PIXELS

    bomb = tmp_path / "bomb.png"
    Image.new("1", (12_000, 12_000)).save(bomb)  # 144 megapixels in a few KB
    assert DEFAULT_MAX_PIXELS < 12_000 * 12_000
    with pytest.raises(InputError, match="bomb.png: cannot read the image to caption: .*over the bound"):
        caption_files(captioner, [bomb], tmp_path / "cache")
