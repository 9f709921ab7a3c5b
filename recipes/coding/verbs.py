"""The rate verbs of ``vqtok``, added to :mod:`recipes.registry` when this module is imported.

vqtok compress --config fashion_mnist_vqvae --tokenizer runs/fm/tokenizer --prior runs/fm_pixelcnn/prior --out test.vqc
vqtok decompress --config fashion_mnist_vqvae --tokenizer runs/fm/tokenizer --prior runs/fm_pixelcnn/prior --input test.vqc
vqtok compress --config speech_fsdd --tokenizer runs/fsdd/tokenizer --prior runs/fsdd_prior/prior --out eval.vqc
vqtok decompress --config speech_fsdd --tokenizer runs/fsdd/tokenizer --prior runs/fsdd_prior/prior --input eval.vqc --speaker jackson
vqtok rd --config fashion_mnist_vqvae rd.tokenizers=[runs/a/tokenizer,runs/b/tokenizer] --out runs/rd
"""

from __future__ import annotations

from recipes.registry import RECIPES, Recipe, Shortcut, Verb, register

_SCHEMA = "recipes.coding.config:ImageCodingConfig"
_TOKENIZER = Shortcut(
    "--tokenizer", "tokenizer", "tokenizer directory (the 'tokenizer' folder of a training run)", "DIR"
)
_PRIOR = Shortcut("--prior", "prior", "prior directory trained on this tokenizer's codes", "DIR")
_DATA = Shortcut("--data", "data.name", "data set name, e.g. digits, fashion_mnist, cifar10_subset", "NAME")
_DEVICE = Shortcut("--device", "device", "cpu, cuda, cuda:N or auto", "DEVICE")

register(
    Verb(
        "compress",
        "images or speech → codes → one entropy-coded file (range coding with the prior's probabilities); size beside "
        "the NLL",
        default_config="image_vqvae",
        out_help="code file to write (default <tokenizer>/../<data>_<split>.vqc)",
        shortcuts=(
            _TOKENIZER,
            _PRIOR,
            _DATA,
            Shortcut(
                "--input", "compress.input", "image or audio file, or a folder (default: a data set split)", "PATH"
            ),
            Shortcut("--split", "compress.split", "data set split to compress (speech: train or eval)", "SPLIT"),
            Shortcut("--max-items", "compress.max_items", "the first N images or utterances of the split", "N"),
            _DEVICE,
        ),
    ),
    Recipe("compress", "image", "recipes.coding.compress:run", _SCHEMA),
)
register(
    Verb(
        "decompress",
        "a code file → the exact codes → images (.npy and PNGs) or speech (codes, WAVs), checked against the "
        "tokenizer and prior it names",
        default_config="image_vqvae",
        out_help="output directory (default: the file's path without .vqc)",
        shortcuts=(
            _TOKENIZER,
            _PRIOR,
            Shortcut("--input", "decompress.input", "code file written by `vqtok compress`", "FILE"),
            Shortcut(
                "--speaker", "decompress.speaker", "speech: also write WAVs in this training speaker's voice", "NAME"
            ),
            _DEVICE,
        ),
    ),
    Recipe("decompress", "image", "recipes.coding.decompress:run", _SCHEMA),
)
register(
    Verb(
        "rd",
        "rate–distortion: bits per pixel vs PSNR/SSIM of tokenizers beside PNG, JPEG and WebP; writes rd.json and rd.png",
        default_config="image_vqvae",
        out_help="output directory for rd.json and rd.png (default runs/rd)",
        shortcuts=(
            _DATA,
            Shortcut("--split", "rd.split", "held-out split to evaluate on", "SPLIT"),
            Shortcut("--max-items", "rd.max_items", "the first N held-out images", "N"),
            _DEVICE,
        ),
    ),
    Recipe("rd", "image", "recipes.coding.rd:run", _SCHEMA),
)
# The same verbs for speech presets: utterances to a code file and back; bits per second against log-mel distance
# and STOI, beside Opus, Vorbis, MP3.
for _verb, _target in (("compress", "speech_compress"), ("decompress", "speech_decompress"), ("rd", "speech_rd")):
    RECIPES[(_verb, "speech")] = Recipe(
        _verb, "speech", f"recipes.coding.{_target}:run", "recipes.coding.config:SpeechCodingConfig"
    )
