"""Artifacts know what they are and refuse what they are not: model digests, code-file headers, code corpora.

Each test states what a user gets: the exact refusal (a ``ValueError`` whose one line names the file and what is
wrong), or that the artifact still loads.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from modalities.image import ImageTokenizer, ImageTokenizerConfig
from priors.code_file import check_extra, read_code_file
from tokenizers_vq.corpus import open_corpus, save_array, write_meta
from tokenizers_vq.entropy import LIMITS, CodeFileHeader, pack_code_file, unpack_code_file
from tokenizers_vq.io import sha256_file
from tokenizers_vq.pretrained import DIGEST_KEY, directory_identity, legacy_identities, matches_identity


def _tokenizer(seed: int = 0) -> ImageTokenizer:
    torch.manual_seed(seed)
    cfg = ImageTokenizerConfig(in_channels=1, hidden_channels=8, res_channels=4, codebook_size=16, code_dim=4)
    return ImageTokenizer(cfg).eval()


def _flip_tensor_byte(weights: Path) -> None:
    """Flip one bit in the last tensor's bytes (the file's tail), as a bad disk or copy would."""
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x04
    weights.write_bytes(bytes(data))


# ---------------------------------------------------------------------------------------------
# Model folders: a digest of the tensors, checked on load


def test_damaged_weights_are_refused_not_loaded(tmp_path: Path) -> None:
    _tokenizer().save_pretrained(tmp_path / "tok")
    _flip_tensor_byte(tmp_path / "tok" / "model.safetensors")
    with pytest.raises(ValueError, match=r"model\.safetensors is damaged: its tensors do not match the tensors_sha256 "
                                         r"recorded in config\.json\. Re-save the model"):  # fmt: skip
        ImageTokenizer.from_pretrained(tmp_path / "tok")


def test_a_folder_saved_before_the_digest_still_loads(tmp_path: Path) -> None:
    model = _tokenizer()
    model.save_pretrained(tmp_path / "tok")
    config = tmp_path / "tok" / "config.json"
    meta = json.loads(config.read_text())
    del meta[DIGEST_KEY]
    config.write_text(json.dumps(meta))
    loaded = ImageTokenizer.from_pretrained(tmp_path / "tok")
    assert loaded.content_id() == model.content_id() == directory_identity(tmp_path / "tok")


def test_identity_is_the_same_for_a_copy_saved_by_another_process(tmp_path: Path) -> None:
    model = _tokenizer()
    model.save_pretrained(tmp_path / "a")
    code = (f"from modalities.image import ImageTokenizer; "
            f"ImageTokenizer.from_pretrained({str(tmp_path / 'a')!r}).save_pretrained({str(tmp_path / 'b')!r})")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True)
    assert directory_identity(tmp_path / "b") == model.content_id()
    assert matches_identity(model.content_id(), tmp_path / "b")


def test_older_artifacts_name_a_model_by_the_hashes_of_its_files(tmp_path: Path) -> None:
    """Corpora of format 1 recorded the weights file's SHA-256; code files of format 1 a hash of both files' hashes."""
    _tokenizer().save_pretrained(tmp_path / "tok")
    weights = sha256_file(tmp_path / "tok" / "model.safetensors")
    files = f"config.json\0{sha256_file(tmp_path / 'tok' / 'config.json')}\nmodel.safetensors\0{weights}\n"
    old = {weights, hashlib.sha256(files.encode()).hexdigest()}
    assert legacy_identities(tmp_path / "tok") == old
    assert all(matches_identity(h, tmp_path / "tok") for h in old)
    assert not matches_identity("ab" * 32, tmp_path / "tok")


# ---------------------------------------------------------------------------------------------
# Code-file headers: a schema with bounds, checked before anything is allocated


def _raw(
    items: int = 5,
    chunk: int = 2,
    classes: int = 0,
    end: int = -1,
    levels: tuple = ((2, (3, 4), 7),),
    extra: bytes = b'{"modality":"image","rate_model":"prior"}',
    payload: bytes = b"\0" * 8,
    version: int = 2,
    after_body: bytes = b"",
) -> bytes:
    """A code file byte by byte (the layout of tokenizers_vq.entropy), with a valid CRC: a crafted file."""
    body = (
        struct.pack("<32s32sIIIiB", b"t" * 32, b"m" * 32, items, chunk, classes, end, len(levels))
        + b"".join(struct.pack(f"<B{len(shape)}HI", ndim, *shape, k) for ndim, shape, k in levels)
        + struct.pack("<H", len(extra))
        + extra
        + struct.pack("<QI8s", len(payload), zlib.crc32(payload), b"12345678")
        + after_body
    )
    head = struct.pack("<4sBH", b"VQTC", version, len(body)) + body
    return head + struct.pack("<I", zlib.crc32(head)) + payload


def _refused(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=f"the code file's header is malformed: {message}"):
        header, payload = unpack_code_file(data)
        check_extra(header, len(payload))


def test_a_well_formed_crafted_header_parses() -> None:
    header, payload = unpack_code_file(_raw())
    assert header.shapes == [(3, 4)] and header.num_items == 5 and payload == b"\0" * 8


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(extra=b"[1, 2]"), r"'extra' is a JSON list, not an object"),
        (dict(extra=b"\xff\xfe"), r"'extra' is not JSON"),
        (dict(chunk=0), r"chunk_size 0 \(at least 1\)"),
        (dict(items=0), r"0 items \(1 to"),
        (dict(items=2**32 - 1), rf"4294967295 items \(1 to {LIMITS.max_items}\)"),
        (dict(levels=()), r"0 levels \(1 to 8\)"),
        (dict(levels=((3, (2, 2, 2), 7),)), r"a level of 3 dimensions \(1 or 2\)"),
        (dict(levels=((2, (0, 4), 7),)), r"a level of shape \[\(0, 4\)\]: every side is at least 1"),
        (dict(levels=((2, (3, 4), 0),)), r"codebook sizes \[0\]"),
        (dict(levels=((1, (50,), 17),)), r"rows \(1-D levels\) without an end code"),
        (dict(levels=((1, (50,), 17),), end=3), r"end code 3 with codebooks \[17\] \(the end code is K - 1\)"),
        (dict(end=6), r"an end code \(6\) with grids"),
        (
            dict(levels=((2, (3, 4), 7), (1, (5,), 7))),
            r"levels of shapes \[\(3, 4\), \(5,\)\]: all rows \(1-D\) or all grids \(2-D\)",
        ),
        (dict(after_body=b"xx"), r"2 bytes after its last field"),
        (dict(extra=b'{"rate_model":"zip"}'), r"rate_model 'zip' \(prior or unigram\)"),
        (
            dict(extra=b'{"rate_model":"unigram"}'),
            r"'unigram_counts' is not one list of counts per level, as long as its codebook \[7\]",
        ),
        (
            dict(extra=b'{"rate_model":"unigram","unigram_counts":[1,2]}'),
            r"'unigram_counts' is not one list of counts per level, as long as its codebook \[7\]",
        ),
        (
            dict(extra=b'{"rate_model":"unigram","unigram_counts":[1,2,3,4,5,6,0]}'),
            r"'unigram_counts' holds a count that is not a whole number from 1 to 2\*\*53",
        ),
        (dict(extra=b'{"names":["a"]}'), r"'names' is not a list of 5 strings"),
        (dict(extra=b'{"image_shape":[1,-28,28]}'), r"image_shape \[1, -28, 28\]"),
        (dict(extra=b'{"modality":7}'), r"'modality' is not a string"),
        (dict(classes=10, items=100, payload=b"\0" * 4), r"100 class labels in a payload of 4 bytes"),
    ],
)
def test_a_crafted_header_is_refused_naming_the_field(fields: dict, message: str) -> None:
    _refused(_raw(**fields), message)


def test_a_body_shorter_than_its_fields_is_refused() -> None:
    body = _raw()[7:97]  # the fixed fields and one level, then the body stops (its CRC is valid)
    head = struct.pack("<4sBH", b"VQTC", 2, len(body)) + body
    _refused(head + struct.pack("<I", zlib.crc32(head)), r"its body ends 2 bytes early")


def test_a_huge_item_count_in_a_tiny_file_is_refused_at_once() -> None:
    """Like the 489-byte file that once decoded for 32 s and grew to 3.2 GB: a header claiming millions of items.
    It is refused from the header, before a single code is decoded or an array sized by it."""
    start = time.perf_counter()
    _refused(_raw(items=2**23, chunk=2**23), rf"8388608 items \(1 to {LIMITS.max_items}\)")
    _refused(
        _raw(items=2**20, levels=((2, (64, 64), 7),)),
        rf"1048576 items of 4096 codes, more than the {LIMITS.max_codes} codes a file holds",
    )
    counts = json.dumps({"rate_model": "unigram", "unigram_counts": [5] * 17}).encode()
    data = _raw(items=2**16, chunk=2**16, levels=((1, (4,), 17),), end=16, extra=counts)
    assert len(data) < 600
    _refused(data, r"65536 items in a payload of 8 bytes, too small for them at these frequencies")
    _refused(_raw(items=4096, chunk=4096, levels=((2, (64, 32), 7),)), r"chunks of 4096 items of 2048 codes")
    assert time.perf_counter() - start < 0.5


def test_a_file_of_format_version_1_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "old.vqc"
    path.write_bytes(_raw(version=1))
    header, _ = read_code_file(path)
    assert header.version == 1 and header.num_items == 5


def test_headers_round_trip_and_are_checked_before_writing() -> None:
    header = CodeFileHeader("ab" * 32, "cd" * 32, [(12,)], [300], 5, 2, end_code=299, extra={"modality": "speech"})
    back, _ = unpack_code_file(pack_code_file(header, b"\0" * 4))
    assert back == header
    header.chunk_size = 0
    with pytest.raises(ValueError, match=r"chunk_size 0"):
        pack_code_file(header, b"\0" * 4)


# ---------------------------------------------------------------------------------------------
# Code corpora: the arrays must be what meta.json says, and inside the corpus folder


def _corpus(root: Path, n: int = 6, k: int = 16, **changes) -> Path:
    """A tiny image corpus as `vqtok tokenize` writes it: n items of one 3×3 grid, labels of 10 classes."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    save_array(root / "codes_level0.npy", rng.integers(0, k, (n, 3, 3)).astype(np.int16))
    save_array(root / "labels.npy", (np.arange(n) % 10).astype(np.int64))
    meta = {
        "modality": "image",
        "levels": [{"file": "codes_level0.npy", "shape": [3, 3], "codebook_size": k, "dtype": "int16"}],
        "labels": "labels.npy",
        "dataset": {"name": "digits", "split": "test", "class_names": [str(i) for i in range(10)]},
        "count": n,
        "image_shape": [1, 12, 12],
    }
    meta.update(changes)
    write_meta(root, meta)
    return root


def test_a_consistent_corpus_opens(tmp_path: Path) -> None:
    corpus = open_corpus(_corpus(tmp_path / "c"))
    assert len(corpus) == 6 and corpus.num_classes == 10


def _damaged(tmp_path: Path, array: np.ndarray, name: str = "codes_level0.npy", **changes) -> Path:
    root = _corpus(tmp_path / "c", **changes)
    save_array(root / name, array)
    return root


@pytest.mark.parametrize(
    ("array", "name", "message"),
    [
        (np.zeros((6, 4, 4), np.int16), "codes_level0.npy",
         r"holds an array of shape \(6, 4, 4\), not \(items, \*grid\) with the grid \[3, 3\]"),
        (np.zeros((6, 3, 3), np.float32), "codes_level0.npy", r"holds float32 values, not whole numbers"),
        (np.full((6, 3, 3), 16, np.int16), "codes_level0.npy",
         r"holds codes from 16 to 16, outside 0\.\.15 \(codebook_size 16\)"),
        (np.full((6, 3, 3), -1, np.int16), "codes_level0.npy", r"holds codes from -1 to -1"),
        (np.zeros(5, np.int64), "labels.npy", r"holds 5 items but codes_level0\.npy holds 6"),
        (np.full(6, 12, np.int64), "labels.npy", r"holds labels from 12 to 12, outside 0\.\.9 \(10 classes\)"),
    ],
)  # fmt: skip
def test_arrays_that_contradict_meta_json_are_refused(tmp_path: Path, array, name, message) -> None:
    root = _damaged(tmp_path, array, name)
    with pytest.raises(ValueError, match=rf"{re.escape(str(root / name))} does not match meta\.json: it {message}"):
        open_corpus(root)


def test_an_item_count_other_than_meta_json_says_is_refused(tmp_path: Path) -> None:
    root = _corpus(tmp_path / "c", count=60)
    with pytest.raises(ValueError, match=r"codes_level0\.npy does not match meta\.json: it holds 6 items but "
                                         r"meta\.json's 'count' says 60"):  # fmt: skip
        open_corpus(root)


@pytest.mark.parametrize("name", ["../outside.npy", "/etc/hostname", "sub/../../outside.npy"])
def test_a_path_in_meta_json_never_leads_outside_the_corpus(tmp_path: Path, name: str) -> None:
    save_array(tmp_path / "outside.npy", np.zeros((6, 3, 3), np.int16))
    root = _corpus(tmp_path / "c")
    meta = json.loads((root / "meta.json").read_text())
    meta["levels"][0]["file"] = name
    (root / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=rf"'levels\[0\]\.file' = '{name}' leads outside the corpus folder"):
        open_corpus(root)
    meta["levels"][0]["file"], meta["labels"] = "codes_level0.npy", name
    (root / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=rf"'labels' = '{name}' leads outside the corpus folder"):
        open_corpus(root)


def test_a_link_inside_the_corpus_that_points_outside_is_refused(tmp_path: Path) -> None:
    save_array(tmp_path / "outside.npy", np.zeros((6, 3, 3), np.int16))
    root = _corpus(tmp_path / "c")
    (root / "codes_level0.npy").unlink()
    (root / "codes_level0.npy").symlink_to(tmp_path / "outside.npy")
    with pytest.raises(ValueError, match=r"'levels\[0\]\.file' = 'codes_level0\.npy' leads outside the corpus"):
        open_corpus(root)


def test_a_truncated_array_names_the_file(tmp_path: Path) -> None:
    root = _corpus(tmp_path / "c")
    data = (root / "codes_level0.npy").read_bytes()
    (root / "codes_level0.npy").write_bytes(data[:100])
    with pytest.raises(ValueError, match=rf"{re.escape(str(root / 'codes_level0.npy'))} cannot be read as a \.npy array .*the corpus "
                                         r"is damaged"):  # fmt: skip
        open_corpus(root)


def test_a_missing_array_names_the_file(tmp_path: Path) -> None:
    root = _corpus(tmp_path / "c")
    (root / "codes_level0.npy").unlink()
    with pytest.raises(
        FileNotFoundError, match=rf"{re.escape(str(root / 'codes_level0.npy'))} is missing: meta\.json names it"
    ):
        open_corpus(root)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", r"is not valid JSON .*the corpus is damaged"),
        (b"\xff\xfe{}", r"is not valid JSON"),
        ('{"format": "tokenizers-vq/code-corpus", "format_version": 2, "levels": 3}',
         r"is not a valid corpus description: 'levels' must be a non-empty list"),
        ('{"format": "tokenizers-vq/code-corpus", "format_version": 2, "levels": [{"file": "codes_level0.npy"}]}',
         r"is not a valid corpus description: levels\[0\] must hold 'file' \(a name\) and 'codebook_size'"),
    ],
)  # fmt: skip
def test_an_invalid_meta_json_names_the_file(tmp_path: Path, text, message) -> None:
    root = _corpus(tmp_path / "c")
    (root / "meta.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ValueError, match=rf"{re.escape(str(root / 'meta.json'))} {message}"):
        open_corpus(root)


def _speech_corpus(root: Path, offsets: list[int], frames: int = 10) -> Path:
    root.mkdir(parents=True)
    save_array(root / "codes_level0.npy", np.arange(frames, dtype=np.int16) % 8)
    save_array(root / "offsets.npy", np.asarray(offsets, dtype=np.int64))
    save_array(root / "labels.npy", np.zeros(max(len(offsets) - 1, 0), dtype=np.int64))
    write_meta(root, {"modality": "speech", "levels": [{"file": "codes_level0.npy", "shape": [frames],
                      "codebook_size": 8}], "labels": "labels.npy", "offsets": "offsets.npy"})  # fmt: skip
    return root


@pytest.mark.parametrize("offsets", [[0, 4, 8], [0, 6, 4, 10], [1, 10], [0]])
def test_speech_offsets_must_cover_the_frames(tmp_path: Path, offsets: list[int]) -> None:
    root = _speech_corpus(tmp_path / "s", offsets)
    with pytest.raises(ValueError, match=rf"{re.escape(str(root / 'offsets.npy'))} does not match meta\.json: it must rise from 0 to "
                                         r"the 10 frames of codes_level0\.npy"):  # fmt: skip
        open_corpus(root)


def test_a_consistent_speech_corpus_opens(tmp_path: Path) -> None:
    corpus = open_corpus(_speech_corpus(tmp_path / "s", [0, 4, 10]))
    assert corpus.lengths.tolist() == [4, 6] and corpus.end_code == 8


def test_labels_named_in_meta_json_but_missing_are_refused(tmp_path: Path) -> None:
    root = _corpus(tmp_path / "c")
    (root / "labels.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"labels\.npy is missing: meta\.json names it in 'labels'"):
        open_corpus(root)


def test_a_corpus_without_labels_cannot_serve_a_class_conditional_prior(tmp_path: Path) -> None:
    root = _corpus(tmp_path / "c")
    (root / "labels.npy").unlink()
    meta = json.loads((root / "meta.json").read_text())
    del meta["labels"]
    (root / "meta.json").write_text(json.dumps(meta))
    assert open_corpus(root).num_classes == 0  # unlabelled: an unconditional prior's corpus
    with pytest.raises(ValueError, match=r"eval_corpus .* has no labels, but 10 classes are asked for"):
        open_corpus(root, "eval_corpus", num_classes=10)
