"""The mixed-modality data: an image and a speech code corpus with their text prompts, as token-space sequences.

Each labelled item becomes one stream, e.g. Fashion-MNIST class 7 →
``<bos><text>an image of a sneaker</text><img> 49 codes </img><eos>`` and an FSDD utterance of
the digit 7 → ``<bos><text>the spoken word seven</text><aud> its codes </aud><eos>``. The token space
joins a sentencepiece model of the prompts (trained here, or loaded) and the two codebooks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from priors.mixed import MixedPrior
from recipes.engine.artifacts import check_same_tokenizer, check_stream_corpora
from recipes.engine.config import load_config
from recipes.mixed.config import MixedDataConfig, MixedRecipeConfig
from tokenizers_vq.corpus import CodeCorpus, item_codes, open_corpus
from tokenizers_vq.hub import resolve_model
from tokenizers_vq.text import load_text_model, train_text_model
from tokenizers_vq.token_space import CodeSegment, TextSegment, TokenSpace

IMAGE, AUDIO = "img", "aud"  # stream names: codes read <img0:17> and <aud:33>
TEXT_REPEATS = 20  # copies of each prompt in the text model's training sentences


@dataclass
class ModalityData:
    """One modality's corpus, the stream its codes go to and the prompt of each label."""

    stream: str
    corpus: CodeCorpus
    prompts: list[str]
    limit: int | None = None  # use the first N items
    _pieces: dict[int, list[int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.corpus) if self.limit is None else min(self.limit, len(self.corpus))

    def label(self, index: int) -> int:
        assert self.corpus.labels is not None, "mixed corpora are labelled"
        return int(self.corpus.labels[index])

    def sequence(self, space: TokenSpace, index: int, max_codes: int | None = None) -> list[int]:
        """Item ``index`` as token-space ids: its label's prompt, then its codes (cut at ``max_codes``)."""
        label = self.label(index)
        if label not in self._pieces:
            self._pieces[label] = space.text_segment(self.prompts[label]).pieces
        levels = [c[:max_codes].tolist() for c in item_codes(self.corpus, index)]
        return space.serialize([TextSegment(self._pieces[label]), CodeSegment(self.stream, levels)])


def _labels(corpus: CodeCorpus, names: list[str] | None, role: str) -> list[str]:
    if corpus.labels is None or corpus.num_classes == 0:
        raise ValueError(
            f"{role} {corpus.directory} has no labels; the mixed prior needs a label per item for its prompts "
            "(an image data set with classes, FSDD's digits)."
        )
    if names is None:
        names = [str(n).lower() for n in corpus.meta.get("dataset", {}).get("class_names") or []]
    if len(names) < corpus.num_classes:
        raise ValueError(
            f"{role} has {corpus.num_classes} labels but {len(names)} label names; set data.image_labels / "
            "data.audio_labels to one name per label."
        )
    return list(names)


@dataclass
class MixedData:
    """The token space and, per modality, the training and held-out data."""

    space: TokenSpace
    image: ModalityData
    audio: ModalityData
    image_eval: ModalityData | None
    audio_eval: ModalityData | None
    config: MixedDataConfig

    @property
    def lengths(self) -> dict[str, list[tuple[int, int]]]:
        """The grammar's code counts: the image grid of every level, and the audio frame range."""
        image = [(int(np.prod(a.shape[1:])),) * 2 for a in self.image.corpus.levels]
        return {IMAGE: image, AUDIO: [(self.config.audio_min_codes, self.config.audio_max_codes)]}

    def sequence(self, modality: ModalityData, index: int) -> list[int]:
        return modality.sequence(self.space, index, self.config.audio_max_codes if modality.stream == AUDIO else None)

    def training_index(self) -> tuple[int, int, int]:
        """``(images, audio, total)``: the smaller corpus repeats so audio is about ``audio_share`` of the total."""
        n_img, n_aud, share = len(self.image), len(self.audio), self.config.audio_share
        img_reps = max(1, round((1 - share) * n_aud / (share * n_img)))
        aud_reps = max(1, round(share * n_img / ((1 - share) * n_aud)))
        return img_reps * n_img, aud_reps * n_aud, img_reps * n_img + aud_reps * n_aud

    def streams(self) -> dict[str, dict[str, CodeCorpus | None]]:
        """Each stream's corpora by config key, the training corpus first (what the prior records and checks)."""
        held_out = lambda part: None if part is None else part.corpus  # noqa: E731
        return {
            "image": {"data.image_corpus": self.image.corpus, "data.image_eval_corpus": held_out(self.image_eval)},
            "audio": {"data.audio_corpus": self.audio.corpus, "data.audio_eval_corpus": held_out(self.audio_eval)},
        }

    def training_sequence(self, i: int) -> list[int]:
        """Training item ``i`` of ``range(training_index()[2])``: images first, then audio."""
        images, _, _ = self.training_index()
        if i < images:
            return self.sequence(self.image, i % len(self.image))
        return self.sequence(self.audio, (i - images) % len(self.audio))


def _text_model(cfg: MixedDataConfig, prompts: list[str]) -> Any:
    if cfg.text_model is not None:
        return load_text_model(cfg.text_model)
    return train_text_model(prompts * TEXT_REPEATS, vocab_size=cfg.text_vocab_size)


def corpus_sources(cfg: MixedRecipeConfig, prior_dir: Path | None = None) -> MixedDataConfig:
    """``cfg.data``, its unset corpora taken from the training run of the prior at ``prior_dir`` (``<run>/config.yaml``)."""
    data = cfg.data
    saved = prior_dir.parent / "config.yaml" if prior_dir is not None else None
    if saved is None or not saved.is_file():
        return data
    trained = load_config(MixedRecipeConfig, saved).data
    keys = ("image_corpus", "image_eval_corpus", "audio_corpus", "audio_eval_corpus")
    return MixedDataConfig(**{**trained.__dict__, **{k: getattr(data, k) or getattr(trained, k) for k in keys}})


def open_mixed_data(cfg: MixedDataConfig, space: TokenSpace | None = None) -> MixedData:
    """Open the corpora of ``cfg``; build the token space from them (or check them against ``space``)."""
    image = open_corpus(cfg.image_corpus, "data.image_corpus")
    audio = open_corpus(cfg.audio_corpus, "data.audio_corpus")
    if image.modality != "image" or audio.modality != "speech":
        raise ValueError(
            f"data.image_corpus must hold image codes and data.audio_corpus speech codes; got {image.modality} and "
            f"{audio.modality}."
        )
    image_names = _labels(image, cfg.image_labels, "data.image_corpus")
    audio_names = _labels(audio, cfg.audio_labels, "data.audio_corpus")
    image_prompts = [cfg.image_prompt.format(label=n) for n in image_names]
    audio_prompts = [cfg.audio_prompt.format(label=n) for n in audio_names]
    sizes = {IMAGE: [int(lv["codebook_size"]) for lv in image.meta["levels"]],
             AUDIO: [int(lv["codebook_size"]) for lv in audio.meta["levels"]]}  # fmt: skip
    if space is None:
        space = TokenSpace(_text_model(cfg, image_prompts + audio_prompts))
        for name, modality in ((IMAGE, "image"), (AUDIO, "audio")):
            space.add_stream(name, modality, sizes[name])
    elif {n: s.codebook_sizes for n, s in space.streams.items()} != sizes:
        raise ValueError(
            f"the prior's code streams {[(n, s.codebook_sizes) for n, s in space.streams.items()]} do not match the "
            f"corpora's {sizes}; pass the corpora the prior was trained on."
        )

    def held_out(path: str | None, train: CodeCorpus, stream: str, prompts: list[str]) -> ModalityData | None:
        if path is None:
            return None
        role = f"data.{'image' if stream == IMAGE else 'audio'}_eval_corpus"
        return ModalityData(stream, open_corpus(path, role, num_classes=train.num_classes), prompts)

    image_eval = held_out(cfg.image_eval_corpus, image, IMAGE, image_prompts)
    audio_eval = held_out(cfg.audio_eval_corpus, audio, AUDIO, audio_prompts)
    check_same_tokenizer({"data.image_corpus": image, "data.image_eval_corpus": image_eval and image_eval.corpus})
    check_same_tokenizer({"data.audio_corpus": audio, "data.audio_eval_corpus": audio_eval and audio_eval.corpus})
    return MixedData(
        space=space,
        image=ModalityData(IMAGE, image, image_prompts, cfg.image_items),
        audio=ModalityData(AUDIO, audio, audio_prompts),
        image_eval=image_eval,
        audio_eval=audio_eval,
        config=cfg,
    )


def open_prior(cfg: MixedRecipeConfig, device: Any, verb: str) -> tuple[MixedPrior, Path, MixedData]:
    """The prior at ``cfg.prior`` (eval mode, on ``device``), its directory, and its data."""
    if cfg.prior is None:
        raise ValueError(f"{verb} needs a prior: pass --prior DIR (prior=DIR), the 'prior' folder train-mixed wrote.")
    directory = resolve_model(cfg.prior)  # a folder, or the cached snapshot of a Hub repo id
    prior = MixedPrior.from_pretrained(directory, map_location=device)
    data = open_mixed_data(corpus_sources(cfg, directory), prior.space)
    check_stream_corpora(directory, data.streams())
    return prior, directory, data
