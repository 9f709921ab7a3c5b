"""Bad inputs to the modalities: each is read right or refused with a ``ValueError`` that names the file.

Images of other depths than 8 bits, damaged image and audio files, waveforms whose shape could mean
two things, audio too short for one code, labels that are not UTF-8.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from modalities.image.codecs import read_image_files
from modalities.image.data import load_image_dataset, stack_images
from modalities.image.files import read_image
from modalities.speech import AudioError, SpeechTokenizer, SpeechTokenizerConfig, load_audio, mfcc_features
from modalities.speech.data import list_utterances

RAMP = np.arange(256, dtype=np.uint8).reshape(16, 16)  # every 8-bit value once


def _png16(path: Path, pixels: np.ndarray, colour_type: int) -> Path:
    """A 16-bit PNG written byte by byte (Pillow writes 16-bit grey only): colour type 0 grey, 2 RGB."""
    h, w = pixels.shape[:2]
    raw = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )
    return path


# ---- images ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".png", ".tif", ".pgm"])
def test_a_16_bit_grey_image_is_read_at_its_scale_not_clipped(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"grey16{suffix}"
    Image.fromarray(RAMP.astype(np.uint16) * 257).save(path)  # 8-bit v → 16-bit v·257, as image tools widen
    assert np.array_equal(read_image(path, 1)[0], RAMP)  # not 255 everywhere above 255/65535
    assert np.array_equal(read_image(path, 3), np.stack([RAMP] * 3))


def test_a_16_bit_rgb_png_is_read_at_its_scale(tmp_path: Path) -> None:
    pixels = np.stack([RAMP, RAMP[::-1], RAMP.T], axis=-1).astype(np.uint16) * 257
    assert np.array_equal(read_image(_png16(tmp_path / "rgb16.png", pixels, 2), 3), pixels.transpose(2, 0, 1) // 257)


def test_a_folder_of_16_bit_pngs_gives_the_same_pixels_as_its_8_bit_copies(tmp_path: Path) -> None:
    (tmp_path / "16").mkdir(), (tmp_path / "8").mkdir()
    for k in range(3):
        Image.fromarray(np.roll(RAMP, k).astype(np.uint16) * 257).save(tmp_path / "16" / f"{k}.png")
        Image.fromarray(np.roll(RAMP, k)).save(tmp_path / "8" / f"{k}.png")
    sixteen, names = read_image_files(str(tmp_path / "16"), 1)
    assert names == ["0.png", "1.png", "2.png"] and torch.equal(sixteen, read_image_files(str(tmp_path / "8"), 1)[0])


def test_an_imagefolder_of_16_bit_grey_pngs_is_grey_not_3_channel(tmp_path: Path) -> None:
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        Image.fromarray(RAMP.astype(np.uint16) * 257).save(tmp_path / label / "x.png")
    data = load_image_dataset("imagefolder", "train", root=tmp_path)
    assert data.image_shape == (1, 16, 16) and torch.equal(data.images[0, 0], torch.from_numpy(RAMP))


def test_16_bit_pictures_decoded_elsewhere_are_scaled_too(tmp_path: Path) -> None:
    """Images that reach stack_images already decoded (a Hugging Face dataset's Image column) get the same care."""
    deep = Image.fromarray(RAMP.astype(np.uint16) * 257)  # mode I;16, as datasets decodes a 16-bit PNG
    assert torch.equal(
        stack_images([deep, Image.fromarray(RAMP)], "a dataset")[:, 0], torch.from_numpy(RAMP).repeat(2, 1, 1)
    )
    with pytest.raises(ValueError, match="a dataset holds floating-point pixels"):
        stack_images([Image.fromarray(RAMP.astype(np.float32))], "a dataset")


def test_grey_pngs_stored_with_a_palette_or_alpha_are_grey_in_an_imagefolder(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    Image.fromarray(RAMP).convert("P").save(tmp_path / "a" / "palette.png")  # a grey palette
    Image.fromarray(RAMP).convert("LA").save(tmp_path / "a" / "alpha.png")
    data = load_image_dataset("imagefolder", "train", root=tmp_path)
    assert data.image_shape == (1, 16, 16) and all(torch.equal(im[0], torch.from_numpy(RAMP)) for im in data.images)
    Image.fromarray(np.stack([RAMP, RAMP, RAMP[::-1]], axis=-1)).save(tmp_path / "a" / "colour.png")
    assert load_image_dataset("imagefolder", "train", root=tmp_path).image_shape == (3, 16, 16)


@pytest.mark.parametrize(("mode", "dtype", "kind"), [("F", np.float32, "floating-point"), ("I", np.int32, "32-bit")])
def test_32_bit_and_float_images_are_refused_naming_the_file(tmp_path: Path, mode: str, dtype, kind: str) -> None:
    path = tmp_path / f"deep_{mode}.tif"
    Image.fromarray(RAMP.astype(dtype)).save(path)
    with pytest.raises(ValueError, match=rf"{path}.*{kind}.*8-bit or 16-bit PNG"):
        read_image(path, 1)


def _cut(path: Path) -> None:
    """Write noise (which does not compress) in the format of ``path``'s suffix, then cut the file in half."""
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("truncated.jpg", _cut),
        ("truncated.png", _cut),
        ("empty.png", lambda p: p.write_bytes(b"")),
        ("text.png", lambda p: p.write_text("not an image")),
    ],
)
def test_an_undecodable_image_file_is_named(tmp_path: Path, name: str, damage) -> None:
    path = tmp_path / name
    damage(path)
    with pytest.raises(ValueError, match=rf"cannot read {path} as an image"):
        read_image_files(str(tmp_path), 1)
    (tmp_path / "class").mkdir()
    path.rename(tmp_path / "class" / name)
    with pytest.raises(ValueError, match=rf"cannot read {tmp_path / 'class' / name} as an image"):
        load_image_dataset("imagefolder", "train", root=tmp_path)


def test_a_folder_named_like_an_image_is_not_read_as_one(tmp_path: Path) -> None:
    (tmp_path / "folder.png").mkdir()
    Image.fromarray(RAMP).save(tmp_path / "real.png")
    assert read_image_files(str(tmp_path), 1)[1] == ["real.png"]


def test_damaged_data_set_files_are_named(tmp_path: Path) -> None:
    header = b"\x00\x00\x08\x03" + np.array([2, 28, 28], ">u4").tobytes()
    whole = gzip.compress(header + bytes(2 * 28 * 28))
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(whole[: len(whole) // 2])  # a download cut short
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match=rf"cannot read {tmp_path / 'train-images-idx3-ubyte.gz'}: it is not a whole"):
        load_image_dataset("fashion_mnist", "train", root=tmp_path)
    for k in range(4):
        Image.fromarray(np.zeros((1, 1024, 3), np.uint8)).save(tmp_path / f"cifar10_batch_{k}.png")
    (tmp_path / "labels.txt").write_text("3\ncat\n")
    with pytest.raises(ValueError, match=rf"{tmp_path / 'labels.txt'} must hold one integer label per line"):
        load_image_dataset("cifar10_subset", "train", root=tmp_path)


# ---- speech -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def speech() -> SpeechTokenizer:
    torch.manual_seed(0)
    config = SpeechTokenizerConfig(hidden_channels=16, num_res_blocks=1, codebook_size=16, code_dim=8,
                                   griffin_lim_iters=2)  # fmt: skip
    return SpeechTokenizer(config).eval()


def test_a_stereo_2_d_waveform_is_refused_not_taken_for_two_utterances(speech: SpeechTokenizer) -> None:
    stereo = 0.1 * torch.randn(2, 16000)
    for ambiguous in (stereo, stereo.T):  # (c, t) as torchaudio gives it, (t, c) as soundfile does
        with pytest.raises(ValueError, match=r"ambiguous.*waveform\.mean\(0\).*\(b, 1, t\)"):
            speech.encode(ambiguous, 16000)
    mixed = speech.encode(stereo.mean(0), 16000).codes
    assert torch.equal(speech.encode(stereo[None], 16000).codes, mixed)  # (1, c, t): one recording, mixed
    assert speech.encode(stereo[:, None], 16000).codes.shape[0] == 2  # (b, 1, t): a batch of two
    assert torch.equal(speech.encode(stereo[:1], 16000).codes, speech.encode(stereo[0], 16000).codes)  # (1, t)


def test_audio_shorter_than_one_code_is_refused(speech: SpeechTokenizer, tmp_path: Path) -> None:
    assert speech.config.min_samples == 320 and speech.config.min_seconds == pytest.approx(0.02)
    with pytest.raises(AudioError, match=r"too short: 1 sample at 16000 Hz.*at least 20\.0 ms"):
        speech.encode(torch.tensor([0.5]), 16000)
    with pytest.raises(AudioError, match=r"too short: 319 samples"):
        speech.reconstruct(0.1 * torch.randn(319), 16000)
    sf.write(tmp_path / "one.wav", np.array([0.5], np.float32), 16000)
    with pytest.raises(AudioError, match=rf"{tmp_path / 'one.wav'} is too short: 1 sample"):
        load_audio(tmp_path / "one.wav", min_seconds=speech.config.min_seconds)
    # One code's worth works end to end, at the model's rate and at another.
    assert speech.reconstruct(0.1 * torch.randn(320), 16000).shape == (1, 320)
    assert speech.encode(0.1 * torch.randn(160), 8000).codes.shape == (1, 2)


def test_a_single_code_decodes_and_short_audio_has_mfccs(speech: SpeechTokenizer) -> None:
    assert speech.decode(torch.zeros(1, 1, dtype=torch.long)).shape == (1, 160)  # Griffin-Lim of 2 frames
    assert mfcc_features(0.1 * torch.randn(1, 240), 16000, 320).shape == (1, 39, 1)


def _speech_folder(root: Path) -> Path:
    (root / "spk").mkdir(parents=True)
    for i in (1, 2):
        sf.write(root / "spk" / f"u{i}.wav", 0.1 * np.random.default_rng(i).standard_normal(1600), 16000)
        (root / "spk" / f"u{i}.phn").write_text("0 800 a\n800 1600 b\n")
    return root


def test_a_non_audio_wav_with_phone_labels_is_named(tmp_path: Path) -> None:
    root = _speech_folder(tmp_path)
    (root / "spk" / "u2.wav").write_text("not audio")
    utterance = list_utterances(root)[1]
    with pytest.raises(AudioError, match=rf"cannot read {root / 'spk' / 'u2.wav'} as audio"):
        utterance.phones()
    with pytest.raises(AudioError, match=rf"cannot read {root / 'spk' / 'u2.wav'} as audio"):
        load_audio(utterance.path)


def test_phone_labels_that_are_not_utf8_are_named(tmp_path: Path) -> None:
    root = _speech_folder(tmp_path)
    (root / "spk" / "u1.phn").write_bytes(b"0 800 \xff\n")
    with pytest.raises(ValueError, match=rf"{root / 'spk' / 'u1.phn'} is not a UTF-8 text file"):
        list_utterances(root)[0].phones()


def test_each_folder_is_listed_once_however_many_files_it_holds(tmp_path: Path, monkeypatch) -> None:
    root = _speech_folder(tmp_path)
    for i in range(3, 40):
        sf.write(root / "spk" / f"u{i}.wav", 0.1 * np.ones(400, np.float32), 16000)
    listed: list[Path] = []
    iterdir = Path.iterdir
    monkeypatch.setattr(Path, "iterdir", lambda self: listed.append(self) or iterdir(self))
    utterances = list_utterances(root)
    assert len(utterances) == 39 and [u.phones_path is not None for u in utterances].count(True) == 2
    assert listed == [root / "spk"]
