"""Publishing as a user meets it: nothing private in the folder, a folder that appears whole or not at all, the
view and marking switches, one-line errors (exit code 2) for bad input, and the Hub upload up to its request."""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from synthdiv.cli.app import main
from synthdiv.core.rundir import RunDir
from synthdiv.publish import build
from synthdiv.publish.layout import PublishedDir
from tests.data.toydata import make_toy_run

REPO = Path(__file__).resolve().parents[2]


def _machine_paths(run: RunDir) -> list[bytes]:
    paths = {str(run.root), str(run.root.resolve()), str(REPO), os.path.expanduser("~")}
    return [p.encode() for p in paths if p not in ("/", "")]


def test_no_absolute_path_of_the_machine_is_in_the_folder(published, finished):
    _, run = finished
    folder = PublishedDir(published.path)
    needles = _machine_paths(run)
    files = [p for p in folder.root.rglob("*") if p.is_file()]
    assert len(files) > 10
    for path in files:
        blobs = [path.read_bytes()]
        if path.suffix == ".tar":
            with tarfile.open(path) as tf:
                blobs += [tf.extractfile(m).read() for m in tf if m.isfile()]
        if path.suffix == ".parquet":  # compressed pages: search the decoded values too
            blobs.append(str(pq.read_table(path).to_pylist()).encode())
        for blob in blobs:
            for needle in needles:
                assert needle not in blob, (path, needle)
    config = folder.recipe_file("config.yaml").read_text()
    assert "<local>/tiny-diffusion" in config and "run_dir: run" in config


def test_the_secret_in_a_config_is_redacted(finished, tmp_path):
    from synthdiv.publish.privacy import REDACTED, Scrubber
    from synthdiv.publish.recipe import public_config

    cfg, run = finished
    llm = cfg.models.llm.model_copy(update={"options": {"api_key": "sk-secret", "api_key_env": "MY_KEY"}})
    models = cfg.models.model_copy(update={"llm": llm})
    data = public_config(cfg.model_copy(update={"models": models}), Scrubber(run.root))
    assert data["models"]["llm"]["options"] == {"api_key": REDACTED, "api_key_env": "MY_KEY"}


def test_a_failure_midway_leaves_no_folder_and_no_partial(finished, tmp_path, monkeypatch):
    cfg, _ = finished
    out = tmp_path / "set"

    def boom(*args, **kwargs):
        raise OSError("disk on fire")

    monkeypatch.setattr(build, "write_croissant", boom)
    with pytest.raises(OSError, match="disk on fire"):
        build.publish(cfg, out)
    assert not out.exists() and not PublishedDir(out).partial.exists()


def test_a_partial_folder_left_by_a_killed_publish_is_replaced(finished, tmp_path):
    cfg, _ = finished
    out = PublishedDir(tmp_path / "set")
    out.partial.mkdir()
    (out.partial / "stale").write_text("from a killed publish")
    result = build.publish(cfg, out.root)
    assert result.images == 9 and not out.partial.exists() and not (out.root / "stale").exists()


def test_no_mark_links_the_shards_and_keeps_their_bytes(tmp_path, make_config):
    paths = make_toy_run(tmp_path / "toy", num_classes=2, syn_per_class=3)
    cfg = make_config(run_dir=str(paths["run"]))
    run = RunDir(paths["run"])
    result = build.publish(cfg, tmp_path / "set", mark=False)
    out = PublishedDir(result.path)
    assert result.linked == result.shards == 1 and result.marked == 0
    assert out.shard_tar(0).stat().st_ino == run.shard_tar(0).stat().st_ino  # a hard link, never a move
    assert run.shard_tar(0).exists()
    table = pq.read_table(out.metadata)
    assert not any(table.column("marked").to_pylist()) and table.num_rows == 6


def test_a_view_publishes_only_its_images(finished, tmp_path):
    cfg, _ = finished
    everything = pq.read_table(build.publish(cfg, tmp_path / "all").path / "metadata")
    kept = {k for k, f in zip(everything.column("key").to_pylist(), everything.column("keep_clip-top1").to_pylist(),
                              strict=True) if f}
    view = build.publish(cfg, tmp_path / "top1", view="clip-top1")
    out = PublishedDir(view.path)
    names = set()
    for shard in out.shards():
        with tarfile.open(out.shard_tar(shard)) as tf:
            names |= {m.name.split(".")[0] for m in tf}
    assert names == kept == set(pq.read_table(out.metadata).column("key").to_pylist())


def _run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["publish", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_publishes_a_run_directory(finished, tmp_path, capsys):
    _, run = finished
    code, out, err = _run_cli(capsys, str(run.root), "--out", str(tmp_path / "set"))
    assert code == 0, err
    assert "published 9 images in 3 shards" in out and (tmp_path / "set" / "croissant.json").exists()


@pytest.mark.parametrize("case", ["exists", "view", "both", "missing", "not-a-run", "repo"])
def test_cli_bad_input_is_one_line_with_exit_code_2(finished, tmp_path, capsys, case):
    _, run = finished
    out = tmp_path / "set"
    args = [str(run.root), "--out", str(out)]
    expected = {"exists": "already exists", "view": "--view: unknown view 'nope'", "both": "choose one",
                "missing": "not found; expected a run directory", "not-a-run": "no config.yaml",
                "repo": "--to-hub: 'not a repo' is not a repository id"}[case]
    if case == "exists":
        out.mkdir()
    elif case == "view":
        args += ["--view", "nope"]
    elif case == "both":
        args += ["--view", "train", "--all"]
    elif case == "missing":
        args[0] = str(tmp_path / "nowhere")
    elif case == "not-a-run":
        args[0] = str(tmp_path)
    else:
        args += ["--to-hub", "not a repo"]
    code, _, err = _run_cli(capsys, *args)
    assert code == 2 and expected in err and err.count("\n") == 1, err
    assert not PublishedDir(out).partial.exists()


def test_to_hub_without_a_token_is_one_line_and_publishes_nothing(finished, tmp_path, capsys, monkeypatch):
    _, run = finished
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty token store
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    code, _, err = _run_cli(capsys, str(run.root), "--out", str(tmp_path / "set"), "--to-hub", "me/tiny-synth")
    assert code == 2 and "no Hugging Face token; set HF_TOKEN" in err and err.count("\n") == 1
    assert not (tmp_path / "set").exists()


def test_to_hub_uploads_the_folder_as_a_dataset_repository(finished, tmp_path, capsys, monkeypatch):
    import huggingface_hub

    _, run = finished
    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs, self.token))
        return f"https://huggingface.co/datasets/{repo_id}"

    def upload_folder(self, **kwargs):
        files = sorted(p.relative_to(kwargs["folder_path"]).as_posix() for p in Path(kwargs["folder_path"]).rglob("*")
                       if p.is_file())
        calls.append(("upload_folder", kwargs["repo_id"], {**kwargs, "files": files}, self.token))

    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    code, out, err = _run_cli(capsys, str(run.root), "--out", str(tmp_path / "set"), "--to-hub", "me/tiny-synth")
    assert code == 0, err
    assert [c[0] for c in calls] == ["create_repo", "upload_folder"]
    assert calls[0][2]["repo_type"] == "dataset" and calls[0][2]["exist_ok"] is True
    upload = calls[1][2]
    assert upload["repo_type"] == "dataset" and upload["folder_path"] == str(tmp_path / "set")
    assert {"README.md", "croissant.json", "data/shard-000000.tar", "recipe/config.yaml"} <= set(upload["files"])
    assert all(c[3] == "hf_test_token" for c in calls)
    assert "uploaded to https://huggingface.co/datasets/me/tiny-synth" in out


def test_a_copy_of_the_folder_reads_the_same(published, tmp_path):
    """The folder is self-contained: moved elsewhere, its metadata still names its own files."""
    copy = tmp_path / "moved"
    shutil.copytree(published.path, copy)
    out = PublishedDir(copy)
    assert out.shards() == [0, 1, 2] and pq.read_table(out.metadata).num_rows == 9


def test_include_real_publishes_the_real_images_and_hides_their_folder(tmp_path, make_config):
    paths = make_toy_run(tmp_path / "toy", num_classes=2, real_per_class=3, syn_per_class=2)
    cfg = make_config(run_dir=str(paths["run"]))
    without = build.publish(cfg, tmp_path / "plain")
    assert without.real == 0 and not PublishedDir(without.path).real.exists()
    result = build.publish(cfg, tmp_path / "set", include_real=True)
    out = PublishedDir(result.path)
    assert result.real == 6
    with tarfile.open(out.real_tar(1)) as tf:
        names = tf.getnames()
        assert tf.extractfile("real-0001-000000.cls").read() == b"1"
        images = [tf.extractfile(n).read() for n in names if n.endswith(".png")]
    assert len(names) == 6 and (paths["real"] / "class1" / "0000.png").read_bytes() in images
    classes = out.recipe_file("classes.jsonl").read_text()
    assert str(paths["real"]) not in classes and "<local>/class1" in classes
