"""``vqtok decompress`` for speech: a code file → the exact codes of each utterance → (when asked) WAV files.

Dimension legend: ``U`` utterances, ``N`` code frames of all utterances end to end, ``T`` positions per row.

The header names the tokenizer and the entropy model by hash: a file coded with a prior needs that
prior (``--prior``), one coded with code frequencies carries them and takes no prior; another
tokenizer or prior is refused before anything is decoded, and the decoded codes are checked
against the header's digest. The output directory (``--out``, default the file's path without
``.vqc``) holds, like a speech code corpus, ``codes_level0.npy`` ``(N,)`` and ``offsets.npy``
``(U + 1,)`` (utterance ``u``'s codes are ``[offsets[u], offsets[u + 1])``), ``labels.npy`` (a
conditional prior's class labels), ``utterances.jsonl`` (name and frames of each), and with
``decompress.wav`` or ``decompress.speaker`` one WAV per utterance, decoded by the tokenizer in that
training speaker's voice. It appears complete or not at all.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from modalities.speech import save_audio
from recipes.coding.common import check_digest, decode_levels, model_digest, table_of
from recipes.coding.config import SpeechCodingConfig
from recipes.coding.decompress import DecompressResult, save_array
from recipes.coding.speech_compress import counts_digest, open_speech_tokenizer, row_length, speech_prior
from recipes.engine.runtime import evaluation_mode
from tokenizers_vq.corpus import trim_at_end
from tokenizers_vq.entropy import CodeDecoder, CodeFileHeader, read_code_file
from tokenizers_vq.io import atomic_directory, write_jsonl


def decode_unigram_rows(header: CodeFileHeader, payload: bytes) -> torch.Tensor:
    """Rows ``(U, T)`` of a file coded with the code frequencies its header carries (see ``speech_compress``)."""
    counts = np.asarray(header.extra["unigram_counts"], dtype=np.int64)
    end, (T,) = header.end_code, header.shapes[0]
    table = table_of(counts)[None]  # (1, K + 1)
    decoder = CodeDecoder(payload)
    rows = torch.full((header.num_items, T), end, dtype=torch.long)
    for u in range(header.num_items):
        for position in range(T + 1):
            code = int(decoder.decode(table)[0])
            if code == end:
                break
            if position == T:
                raise ValueError("the payload holds an utterance longer than the header allows: the file is damaged.")
            rows[u, position] = code
    decoder.finish()
    check_digest(header, [rows], None, "the code frequencies in the header are not those the file was coded with")
    return rows


def _wav_names(header: CodeFileHeader) -> list[str]:
    names = header.extra.get("names")
    stems = [Path(n).stem for n in names] if names else []
    if stems and len(set(stems)) == len(stems):
        return [f"{s}.wav" for s in stems]
    width = len(str(max(header.num_items - 1, 0)))
    return [f"{i:0{width}d}.wav" for i in range(header.num_items)]


def run(cfg: SpeechCodingConfig) -> DecompressResult:
    """Decode the code file ``cfg.decompress.input`` with ``cfg.tokenizer`` (and ``cfg.prior`` when it needs one)."""
    if cfg.decompress.input is None:
        raise ValueError("decompress needs a code file: pass --input FILE (decompress.input=FILE).")
    source = Path(cfg.decompress.input).expanduser()
    header, payload = read_code_file(source)
    modality = header.extra.get("modality", "image")
    if modality != "speech":
        raise ValueError(f"{source} holds {modality} codes; decompress it with a {modality} preset (--config).")
    model, tokenizer_dir, device = open_speech_tokenizer(cfg, "decompress")
    speaker, wav = cfg.decompress.speaker, cfg.decompress.wav or cfg.decompress.speaker is not None
    if wav and model.speakers and speaker not in model.speakers:
        raise ValueError(
            f"WAVs need one of the tokenizer's training speakers: pass --speaker NAME, one of {model.speakers}."
        )
    rate_model = header.extra.get("rate_model")
    start = time.perf_counter()
    if rate_model == "prior":
        if cfg.prior is None:
            raise ValueError(
                f"{source.name} was coded with a prior (sha256 {header.model_sha256[:16]}…): pass --prior DIR, "
                "the prior it was compressed with."
            )
        prior, prior_dir = speech_prior(cfg, device, tokenizer_dir, "decompress")
        header.check_identity(model_digest(tokenizer_dir), model_digest(prior_dir))
        row_length(prior, model.config.codebook_size)
        (rows,), labels = decode_levels(prior, header, payload)
    else:
        if cfg.prior is not None:
            raise ValueError(f"{source.name} was coded with code frequencies, not a prior; drop --prior.")
        header.check_identity(model_digest(tokenizer_dir), counts_digest(np.asarray(header.extra["unigram_counts"])))
        rows, labels = decode_unigram_rows(header, payload), None
    seconds = time.perf_counter() - start
    codes = trim_at_end(rows, header.end_code)
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in codes])]).astype(np.int64)
    names = _wav_names(header)
    out = Path(cfg.out).expanduser() if cfg.out else source.with_suffix("")
    with atomic_directory(out) as tmp:
        save_array(tmp / "codes_level0.npy", torch.cat(codes).numpy())
        save_array(tmp / "offsets.npy", offsets)
        if labels is not None:
            save_array(tmp / "labels.npy", labels.numpy())
        write_jsonl(tmp / "utterances.jsonl", [{"name": (header.extra.get("names") or names)[u], "frames": len(c)}
                                               for u, c in enumerate(codes)])  # fmt: skip
        if wav:
            with evaluation_mode(model):
                for name, c in zip(names, codes, strict=True):
                    save_audio(tmp / name, model.decode(c[None].to(device), speaker=speaker)[0], model.sample_rate)
    figures = {"items": header.num_items, "frames": int(offsets[-1]), "file_bytes": source.stat().st_size,
               "rate_model": rate_model, "decode_seconds": seconds, "wav_files": len(names) if wav else 0}  # fmt: skip
    return DecompressResult(str(out), figures)
