"""Checkpoint registry, cache resolution, hash-checked downloads and offline failure of saa_lib.weights.zoo."""
from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import threading
import time
from pathlib import Path

import pytest

from saa_lib.weights import download as dl
from saa_lib.weights import zoo
from saa_lib.weights.download import HashMismatchError, MissingFileError

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "saa_settings.yaml"
HASH_RE = {"md5": r"[0-9a-f]{32}", "sha256": r"[0-9a-f]{64}", "sha256-prefix": r"[0-9a-f]{6,63}"}
REQUIRED = ("sam_vit_h", "sam_vit_l", "sam_vit_b", "groundingdino_swint_ogc", "wide_resnet50_2",
            "bert_base_uncased_config", "bert_base_uncased_vocab")


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """Every test gets an empty cache."""
    monkeypatch.setenv("SAA_HOME", str(tmp_path / "saa"))
    return tmp_path / "saa"


def _no_network(monkeypatch):
    """Any attempt to reach the network fails the test."""
    def boom(*args, **kwargs):
        raise AssertionError("network was used")
    monkeypatch.setattr(dl, "reachable", boom)
    import pooch
    monkeypatch.setattr(pooch, "retrieve", boom)


# ---------------------------------------------------------------- registry
def test_registry_entries_complete():
    assert set(REQUIRED) <= set(zoo.CHECKPOINTS)
    for name, ck in zoo.CHECKPOINTS.items():
        assert ck.name == name
        assert ck.url.startswith("https://"), name
        assert ck.filename and not Path(ck.filename).is_absolute()
        assert ck.size_bytes > 0 and ck.description and ck.hash_source
        if ck.embedded:
            assert ck.known_hash is None
            continue
        alg, _, hexdigits = ck.known_hash.rpartition(":")
        assert alg in HASH_RE and re.fullmatch(HASH_RE[alg], hexdigits), (name, ck.known_hash)
        assert ck.path == dl.saa_home() / "weights" / ck.filename


def test_file_names_carry_their_hash_digits():
    for name in ("sam_vit_h", "sam_vit_l", "sam_vit_b", "wide_resnet50_2"):
        ck = zoo.CHECKPOINTS[name]
        digits = re.search(r"[_-]([0-9a-f]{6,8})\.pth$", ck.filename).group(1)
        assert ck.known_hash.split(":")[1].startswith(digits), name
    assert zoo.CHECKPOINTS["wide_resnet50_2"].known_hash == "sha256-prefix:95faca4d"


@pytest.mark.skipif(not REFERENCE.exists(), reason="reference settings not beside the project")
def test_registry_agrees_with_reference_settings():
    import yaml

    ref = yaml.safe_load(REFERENCE.read_text())["checkpoints"]
    for name in ("sam_vit_h", "sam_vit_l", "sam_vit_b", "groundingdino_swint_ogc"):
        ck = zoo.CHECKPOINTS[name]
        assert ck.url == ref[name]["url"]
        alg = "md5" if "md5" in ref[name] else "sha256"
        assert ck.known_hash == f"{alg}:{ref[name][alg]}"
    assert zoo.CHECKPOINTS["wide_resnet50_2"].url == ref["saliency_backbone"]["torchvision_alternative"]


def test_weights_for_names_registry_files():
    assert zoo.weights_for() == ["sam_vit_h", "groundingdino_swint_ogc", "bert_base_uncased_vocab", "wide_resnet50_2"]
    assert "wide_resnet50_2" not in zoo.weights_for("vit_b", "tf_efficientnet_lite0")
    with pytest.raises(KeyError, match="sam_vit_x"):
        zoo.weights_for("vit_x")


def test_unknown_name_lists_the_zoo():
    with pytest.raises(KeyError, match="sam_vit_h"):
        zoo.resolve_checkpoint("sam_vit_q")


# ---------------------------------------------------------------- offline behaviour
def test_offline_failure_is_one_error_naming_every_file(monkeypatch):
    monkeypatch.setattr(dl, "reachable", lambda url, timeout=None: False)
    names = [n for n, ck in zoo.CHECKPOINTS.items() if not ck.embedded]
    t0 = time.monotonic()
    with pytest.raises(MissingFileError) as info:
        zoo.require_weights()
    elapsed = time.monotonic() - t0
    assert elapsed < 10
    msg = str(info.value)
    assert [m[0] for m in info.value.missing] == names
    for n in names:
        ck = zoo.CHECKPOINTS[n]
        assert n in msg and ck.url in msg and str(ck.path) in msg
    assert "offline" in msg
    assert not any(zoo.CHECKPOINTS[n].path.exists() for n in names)


def test_offline_probes_run_in_parallel(monkeypatch):
    def slow(url, timeout=None):
        time.sleep(1.0)
        return False
    monkeypatch.setattr(dl, "reachable", slow)
    hosts = {ck.url.split("/")[2] for ck in zoo.CHECKPOINTS.values() if not ck.embedded}
    assert len(hosts) >= 4  # a sequential probe would take >= 4 s
    t0 = time.monotonic()
    with pytest.raises(MissingFileError):
        zoo.require_weights()
    assert time.monotonic() - t0 < 2.5


def test_hanging_probe_counts_as_offline(monkeypatch):
    monkeypatch.setattr(dl, "CONNECT_TIMEOUT", 0.2)
    monkeypatch.setattr(dl, "reachable", lambda url, timeout=None: time.sleep(5) or True)
    t0 = time.monotonic()
    with pytest.raises(MissingFileError, match="cannot reach"):
        zoo.require_weights(["sam_vit_b", "wide_resnet50_2"])
    assert time.monotonic() - t0 < 2.0


def test_real_download_attempt_fails_fast_or_verifies():
    """The small vocabulary, with the real network: offline it must fail within 10 s naming URL and path; online the
    file must arrive with its published hash."""
    ck = zoo.CHECKPOINTS["bert_base_uncased_vocab"]
    t0 = time.monotonic()
    try:
        paths = zoo.require_weights([ck.name], progress=False)
    except MissingFileError as err:
        assert time.monotonic() - t0 < 10
        assert ck.url in str(err) and str(ck.path) in str(err)
        assert not ck.path.exists()
    else:
        assert paths[ck.name] == ck.path
        dl.check_hash(ck.path, ck.known_hash)
        assert len(ck.path.read_text(encoding="utf-8").splitlines()) == 30522


def test_download_switched_off_uses_no_network(monkeypatch):
    _no_network(monkeypatch)
    with pytest.raises(MissingFileError, match="switched off") as info:
        zoo.require_weights(["sam_vit_b", "groundingdino_swint_ogc"], download=False)
    assert [m[0] for m in info.value.missing] == ["sam_vit_b", "groundingdino_swint_ogc"]
    with pytest.raises(MissingFileError, match="switched off"):
        zoo.resolve_checkpoint("sam_vit_b", download=False)


def test_missing_weights_lists_only_absent_files(monkeypatch):
    _no_network(monkeypatch)
    assert [m[0] for m in zoo.missing_weights(["sam_vit_b", "wide_resnet50_2"])] == ["sam_vit_b", "wide_resnet50_2"]
    ck = zoo.CHECKPOINTS["sam_vit_b"]
    ck.path.parent.mkdir(parents=True)
    ck.path.write_bytes(b"x")
    missing = zoo.missing_weights(["sam_vit_b", "wide_resnet50_2"])
    assert missing == [("wide_resnet50_2", zoo.CHECKPOINTS["wide_resnet50_2"].url,
                        zoo.CHECKPOINTS["wide_resnet50_2"].path)]


# ---------------------------------------------------------------- downloads from a local server
@pytest.fixture
def server():
    """HTTP server on 127.0.0.1 serving ``files`` (path -> bytes) and counting requests."""
    files: dict[str, bytes] = {}
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            hits.append(self.path)
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", files, hits
    httpd.shutdown()
    httpd.server_close()


def _register(monkeypatch, url, known_hash, filename="blob.bin", name="test_blob"):
    ck = zoo.Checkpoint(name, url, filename, known_hash, 10, "test file", "computed by the test")
    monkeypatch.setitem(zoo.CHECKPOINTS, name, ck)
    return ck


PAYLOAD = b"saa weights " * 1000


@pytest.mark.parametrize("known_hash", [
    "sha256:" + hashlib.sha256(PAYLOAD).hexdigest(),
    "md5:" + hashlib.md5(PAYLOAD).hexdigest(),
    "sha256-prefix:" + hashlib.sha256(PAYLOAD).hexdigest()[:8],
])
def test_download_verified_then_reused_without_network(server, monkeypatch, known_hash):
    base, files, hits = server
    files["/blob.bin"] = PAYLOAD
    ck = _register(monkeypatch, f"{base}/blob.bin", known_hash)
    assert zoo.resolve_checkpoint(ck.name, progress=False) == ck.path
    assert ck.path.read_bytes() == PAYLOAD and hits == ["/blob.bin"]
    _no_network(monkeypatch)
    assert zoo.require_weights([ck.name]) == {ck.name: ck.path}
    assert zoo.download_weights([ck.name]) == [ck.path]
    assert zoo.resolve_checkpoint(ck.name) == ck.path


@pytest.mark.parametrize("alg", ["sha256", "md5", "sha256-prefix"])
def test_wrong_hash_refused_and_not_kept(server, monkeypatch, alg):
    base, files, _ = server
    files["/blob.bin"] = PAYLOAD
    other = hashlib.new(alg.removesuffix("-prefix"), b"something else").hexdigest()
    ck = _register(monkeypatch, f"{base}/blob.bin", f"{alg}:{other[:8] if 'prefix' in alg else other}")
    with pytest.raises(HashMismatchError):
        zoo.require_weights([ck.name], progress=False)
    assert not ck.path.exists()
    assert not [p for p in ck.path.parent.iterdir() if p.name.startswith("blob.bin")]


def test_some_files_downloaded_rest_reported_together(server, monkeypatch):
    base, files, _ = server
    files["/good.bin"] = PAYLOAD
    good = _register(monkeypatch, f"{base}/good.bin", "sha256:" + hashlib.sha256(PAYLOAD).hexdigest(),
                     "good.bin", "test_good")
    gone = _register(monkeypatch, f"{base}/gone.bin", "sha256:" + "0" * 64, "gone.bin", "test_gone")
    with pytest.raises(MissingFileError) as info:
        zoo.require_weights([good.name, gone.name], progress=False)
    assert [m[0] for m in info.value.missing] == [gone.name]
    assert good.path.read_bytes() == PAYLOAD and str(gone.path) in str(info.value)


def test_existing_file_with_right_hash_is_reused(monkeypatch):
    ck = _register(monkeypatch, "https://example.invalid/blob.bin", "sha256:" + hashlib.sha256(PAYLOAD).hexdigest())
    ck.path.parent.mkdir(parents=True)
    ck.path.write_bytes(PAYLOAD)
    _no_network(monkeypatch)
    assert zoo.resolve_checkpoint(ck.name) == ck.path
    ck.path.write_bytes(PAYLOAD + b"!")
    with pytest.raises(HashMismatchError, match="delete it"):
        zoo.resolve_checkpoint(ck.name)


def test_a_verified_file_is_not_hashed_again_until_it_changes(tmp_path, monkeypatch):
    f = tmp_path / "big.pth"
    f.write_bytes(PAYLOAD)
    known = "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()
    dl.check_hash_once(f, known)
    calls = []
    real = dl.file_hash
    monkeypatch.setattr(dl, "file_hash", lambda *a, **k: calls.append(a) or real(*a, **k))
    dl.check_hash_once(f, known)
    assert calls == []  # remembered: same path, size and modification time
    with pytest.raises(HashMismatchError):
        dl.check_hash_once(f, "sha256:" + "0" * 64)  # another expected hash is checked for real
    st = f.stat()
    f.write_bytes(PAYLOAD[::-1])  # same size, new content
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    with pytest.raises(HashMismatchError):
        dl.check_hash_once(f, known)
    assert len(calls) == 2


def test_explicit_path_wins(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    mine = tmp_path / "my_sam.pth"
    mine.write_bytes(b"my own weights")
    assert zoo.resolve_checkpoint("sam_vit_h", path=mine) == mine
    assert not zoo.CHECKPOINTS["sam_vit_h"].path.exists()
    with pytest.raises(MissingFileError) as info:
        zoo.resolve_checkpoint("sam_vit_h", path=tmp_path / "nope.pth")
    assert str(tmp_path / "nope.pth") in str(info.value)


def test_embedded_bert_config_written_not_downloaded(monkeypatch):
    _no_network(monkeypatch)
    path = zoo.resolve_checkpoint("bert_base_uncased_config")
    cfg = json.loads(path.read_text())
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["vocab_size"]) == \
        (768, 12, 12, 30522)
    from transformers import BertConfig

    assert BertConfig.from_pretrained(str(path.parent), local_files_only=True).intermediate_size == 3072
    path.write_text(json.dumps({**cfg, "note": "mine"}))  # a file already there is kept
    zoo.resolve_checkpoint("bert_base_uncased_config")
    assert json.loads(path.read_text())["note"] == "mine"
    assert "bert_base_uncased_config" not in [m[0] for m in zoo.missing_weights()]
