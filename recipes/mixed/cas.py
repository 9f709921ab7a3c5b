"""``vqtok cas`` with a mixed config: do samples drawn from a text prompt show what the prompt asks for?

Dimension legend: ``n`` items, ``c``/``h``/``w`` image channels and size, ``m`` mel bins, ``F`` classifier frames.

For every image class and every audio label, ``cas.samples_per_class`` segments are drawn from the
label's prompt (the prior picks the modality; a segment of the other modality counts as wrong).

- Images: a small CNN trained on real training images scores the decoded samples
  (``image_sample_accuracy``: the fraction it assigns to the prompted class) beside its accuracy on
  real held-out images (``image_real_accuracy``). ``image_cas`` is the Classification Accuracy
  Score proper: the same CNN trained on the samples, tested on the real held-out images.
- Audio: the same CNN over standardised log-mel spectrograms (``F`` frames, padded with each bin's
  quietest value), trained on REAL recordings (the speech tokenizer's input features of the audio
  corpus's files). It scores the samples' decoded log-mel (the tokenizer's decoder output, before
  any vocoder; voices cycle through the training speakers), real held-out recordings
  (``audio_real_accuracy``) and the decoded codes of those recordings (``audio_reconstruction_accuracy``,
  what a perfect prior of these codes could reach).

A figure that cannot be computed is null, never left out, and ``<figure>_reason`` beside it says why
(as in the image ``cas``): ``image_cas`` when some class got no image sample to train on.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import torch

from modalities.image.data import corpus_images
from modalities.speech import SpeechTokenizer, load_audio
from priors import accuracy, class_probabilities, classification_accuracy_score, train_classifier
from recipes.engine.outputs import figures_file
from recipes.engine.results import Figures
from recipes.engine.runtime import resolve_device, seed_everything, set_threads
from recipes.mixed.config import MixedRecipeConfig
from recipes.mixed.data import AUDIO, IMAGE, ModalityData, open_prior
from recipes.mixed.evaluate import write_figures
from recipes.mixed.sample import sample_images, speech_tokenizer
from tokenizers_vq.corpus import item_codes


def fixed_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Log-mel ``(m, f)`` → ``(1, m, F)``: cut, or padded with each bin's quietest value (silence)."""
    x = x[:, :frames]
    pad = x.min(dim=1, keepdim=True).values.expand(-1, frames - x.shape[1])
    return torch.cat([x, pad], dim=1)[None]


def _first(n: int, limit: int | None) -> int:
    return n if limit is None else min(limit, n)


def recorded_features(tokenizer: SpeechTokenizer, part: ModalityData, limit: int | None, frames: int):
    """Features ``(n, 1, m, F)`` of the real recordings behind the first ``limit`` utterances, and their labels."""
    lines = (part.corpus.directory / "utterances.jsonl").read_text(encoding="utf-8").splitlines()
    n = _first(len(part), limit)
    feats = []
    for row in lines[:n]:
        wave, rate = load_audio(json.loads(row)["path"])
        feats.append(fixed_frames(tokenizer.features(tokenizer.preprocess(wave, rate))[0].cpu(), frames))
    return torch.stack(feats), torch.tensor([part.label(i) for i in range(n)])


def decoded_features(tokenizer: SpeechTokenizer, codes: list[list[int]], speakers: list[Any], frames: int):
    """The decoder's log-mel of each code list, ``(n, 1, m, F)``, in the given voices."""
    out = []
    for seq, speaker in zip(codes, speakers, strict=True):
        mel = tokenizer.decode_features(torch.tensor([seq], device=tokenizer.mel_mean.device), speaker=speaker)
        out.append(fixed_frames(mel[0].cpu(), frames))
    return torch.stack(out)


def _sample_accuracy(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, total: int) -> float:
    """Fraction of ``total`` samples classified as their prompt's label (samples absent from ``x`` count as wrong)."""
    if x.shape[0] == 0:
        return 0.0
    return float((class_probabilities(model, x).argmax(-1).cpu() == labels).sum()) / total


def run(cfg: MixedRecipeConfig, *, overwrite: bool = False) -> Figures:
    """Sample every label's prompt and score the samples of both modalities (see the module docstring)."""
    figures_file(cfg.out, "cas", overwrite)  # refused before any work
    set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    prior, prior_dir, data = open_prior(cfg, device, "cas")
    if data.image_eval is None or data.audio_eval is None:
        raise ValueError("cas tests on real held-out data: set data.image_eval_corpus and data.audio_eval_corpus.")
    cc, per = cfg.cas, cfg.cas.samples_per_class
    start = time.perf_counter()
    drawn: dict[str, list[tuple[int, Any]]] = {IMAGE: [], AUDIO: []}  # (prompted label, segment) by modality
    wrong_modality = {IMAGE: 0, AUDIO: 0}
    sampling_seconds = 0.0
    for part in (data.image, data.audio):
        for label, prompt in enumerate(part.prompts[: part.corpus.num_classes]):
            sampling = type(cfg.sample.sampling)(**{**cfg.sample.sampling.__dict__, "seed": cfg.seed + label})
            segments, seconds = prior.generate(prompt, per, sampling)
            sampling_seconds += seconds
            drawn[part.stream] += [(label, s) for s in segments if s.stream == part.stream]
            wrong_modality[part.stream] += sum(s.stream != part.stream for s in segments)
    seed_everything(cfg.seed)
    figures: dict[str, Any] = {"samples_per_class": per, "sampling_seconds": round(sampling_seconds, 3)}

    # Images: a CNN trained on real images scores the samples; CAS proper trains it on the samples.
    classes = data.image.corpus.num_classes
    train_x, train_y = corpus_images(data.image.corpus, cfg.data_root, cc.real_train_items)
    test_x, test_y = corpus_images(data.image_eval.corpus, cfg.data_root, cc.test_items)
    reference = train_classifier(train_x.to(device), train_y.to(device), classes, cc.image_classifier)
    real = accuracy(reference, test_x.to(device), test_y)
    labels = torch.tensor([lbl for lbl, _ in drawn[IMAGE]], dtype=torch.long)
    samples = sample_images(data, [s for _, s in drawn[IMAGE]], device) if drawn[IMAGE] else train_x[:0]
    sample_acc = _sample_accuracy(reference, samples.to(device), labels, per * classes)
    figures.update(image_modality_rate=1 - wrong_modality[IMAGE] / (per * classes), image_real_accuracy=real,
                   image_sample_accuracy=sample_acc, image_accuracy_ratio=sample_acc / real if real else None)  # fmt: skip
    lost = sorted(set(range(classes)) - set(labels.tolist()))
    if not lost:
        cas = classification_accuracy_score(samples.to(device), labels.to(device), test_x.to(device), test_y,
                                            classes, real, train_x.shape[0], cc.image_classifier)  # fmt: skip
        figures.update(image_cas=cas.cas, image_cas_ratio=cas.cas_ratio)
    else:
        figures.update(image_cas=None, image_cas_ratio=None)
        figures["image_cas_reason"] = (
            f"no image sample of class(es) {lost} (the prior answered their prompts with audio, or with nothing), "
            "so no classifier over every class can be trained on the samples; draw more (cas.samples_per_class)."
        )

    # Audio: the same CNN over log-mel, trained on real recordings.
    speech = speech_tokenizer(data, device)
    classes = data.audio.corpus.num_classes
    train_x, train_y = recorded_features(speech, data.audio, cc.real_train_items, cc.audio_frames)
    test_x, test_y = recorded_features(speech, data.audio_eval, cc.test_items, cc.audio_frames)
    reference = train_classifier(train_x.to(device), train_y.to(device), classes, cc.audio_classifier)
    real = accuracy(reference, test_x.to(device), test_y)
    n_test = test_x.shape[0]
    voices = speech.config.speakers or [None]
    spoken = np.load(data.audio_eval.corpus.directory / "speakers.npy")[:n_test]
    names = data.audio_eval.corpus.meta.get("speakers", [])
    own = [names[int(s)] if names and names[int(s)] in voices else voices[0] for s in spoken]
    codes = [item_codes(data.audio_eval.corpus, i)[0].tolist() for i in range(n_test)]
    recon = accuracy(reference, decoded_features(speech, codes, own, cc.audio_frames).to(device), test_y)
    labels = torch.tensor([lbl for lbl, _ in drawn[AUDIO]], dtype=torch.long)
    sample_voices = [voices[i % len(voices)] for i in range(len(drawn[AUDIO]))]
    sample_acc = 0.0
    if drawn[AUDIO]:
        x = decoded_features(speech, [s.levels[0] for _, s in drawn[AUDIO]], sample_voices, cc.audio_frames)
        sample_acc = _sample_accuracy(reference, x.to(device), labels, per * classes)
    figures.update(audio_modality_rate=1 - wrong_modality[AUDIO] / (per * classes), audio_real_accuracy=real,
                   audio_reconstruction_accuracy=recon, audio_sample_accuracy=sample_acc,
                   audio_accuracy_ratio=sample_acc / real if real else None,
                   audio_sample_codes=float(np.mean([len(s.levels[0]) for _, s in drawn[AUDIO]] or [0])))  # fmt: skip
    figures["seconds"] = round(time.perf_counter() - start, 3)
    result = Figures("cas (mixed prior)", {"prior": str(prior_dir)}, figures)
    write_figures(cfg, "cas", result.to_dict(), overwrite)
    return result
