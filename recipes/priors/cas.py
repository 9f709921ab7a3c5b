"""Classification Accuracy Score of a class-conditional image prior (Razavi et al. 2019), with optional rejection.

Dimension legend: ``n`` images, ``c``/``h``/``w`` image channels and size, ``C`` classes.

1. Draw ``cas.samples_per_class`` samples of every class and decode them with the corpus's tokenizer.
2. Reference: the classifier trained on ``cas.real_train_items`` real training images, tested on the
   real held-out split (the eval corpus's data, else the data set's ``test`` split).
3. CAS: the same classifier trained on the samples only, tested on the same real images.
4. With ``cas.rejection_threshold``: keep the samples the reference classifier assigns to their
   class with probability above it; report the acceptance rate and the CAS of the kept samples.

Figures: ``cas``, ``real_accuracy``, ``cas_ratio`` (= cas / real_accuracy), ``acceptance_rate``,
``cas_rejection``, ``cas_ratio_rejection``, sample counts and timings. A figure that cannot be computed
is null, never left out, and ``<figure>_reason`` beside it says why: ``cas_rejection`` when the threshold
kept no sample of some class (no classifier over every class can be trained on what is left),
``cas_ratio`` when the reference classifier scored 0.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from modalities.image import load_image_dataset
from modalities.image.data import corpus_images
from modalities.image.grid import decode_images
from priors import (
    CodeLayout,
    accuracy,
    class_probabilities,
    classification_accuracy_score,
    rejection_mask,
    train_classifier,
)
from recipes.engine.artifacts import corpus_tokenizer
from recipes.engine.outputs import figures_file, write_figures_file
from recipes.engine.results import Figures
from recipes.priors.common import class_labels, corpus_path, draw_samples, find_corpus, open_prior, setup
from recipes.priors.config import PriorRecipeConfig


def run(cfg: PriorRecipeConfig, *, overwrite: bool = False) -> Figures:
    """CAS of the prior at ``cfg.prior`` against real data (see the module docstring)."""
    target = figures_file(cfg.out, "cas", overwrite)
    device = setup(cfg)
    prior, prior_dir = open_prior(cfg, device, "cas")
    if prior.layout.num_classes == 0:
        raise ValueError(
            "CAS needs a class-conditional prior; train one with model.conditional=true on a labelled corpus."
        )
    corpus = find_corpus(cfg, prior_dir, "corpus", prior.layout)
    if corpus.modality != "image":
        raise ValueError(f"CAS is defined here for image corpora; {corpus.directory} holds {corpus.modality} codes.")
    cc = cfg.cas
    num_classes = prior.layout.num_classes

    start = time.perf_counter()
    labels = class_labels(prior, None, cc.samples_per_class)
    assert labels is not None, "a conditional prior gives labels"
    levels, sampling_seconds = draw_samples(prior, labels, labels.numel(), cfg.sample.batch_size, cfg.sample.sampling,
                                            cfg.sample.cached)  # fmt: skip
    samples = decode_images(corpus_tokenizer(corpus, device), levels).to(device)

    train_images, train_labels = corpus_images(corpus, cfg.data_root, cc.real_train_items)
    test_images, test_labels = _held_out_images(
        cfg, prior_dir, prior.layout, corpus.meta["dataset"]["name"], cc.test_items
    )
    reference = train_classifier(train_images.to(device), train_labels.to(device), num_classes, cc.classifier)
    real_accuracy = accuracy(reference, test_images.to(device), test_labels)
    cas = classification_accuracy_score(samples, labels.to(device), test_images.to(device), test_labels, num_classes,
                                        real_accuracy, train_images.shape[0], cc.classifier)  # fmt: skip
    figures: dict[str, Any] = cas.to_dict()
    if cas.cas_ratio is None:
        figures["cas_ratio_reason"] = "the classifier trained on real images scored 0 on the test images"
    figures["sampling_seconds"] = round(sampling_seconds, 3)
    if cc.rejection_threshold is not None:
        keep = rejection_mask(class_probabilities(reference, samples), labels, cc.rejection_threshold).cpu()
        figures["rejection_threshold"] = cc.rejection_threshold
        figures["acceptance_rate"] = float(keep.float().mean())
        lost = sorted(set(range(num_classes)) - set(labels[keep].tolist()))
        if lost:  # no classifier over every class can be trained on the samples left
            figures.update(cas_rejection=None, cas_ratio_rejection=None, num_samples_rejection=int(keep.sum()))
            figures["cas_rejection_reason"] = (
                f"rejection_threshold={cc.rejection_threshold} kept no sample of class(es) {lost}, so no classifier "
                "over every class can be trained on the kept samples; lower cas.rejection_threshold or draw more "
                "samples (cas.samples_per_class)."
            )
        else:
            rejected = classification_accuracy_score(
                samples[keep.to(device)], labels[keep].to(device), test_images.to(device), test_labels, num_classes,
                real_accuracy, train_images.shape[0], cc.classifier,
            )  # fmt: skip
            figures["cas_rejection"] = rejected.cas
            figures["cas_ratio_rejection"] = rejected.cas_ratio
            figures["num_samples_rejection"] = rejected.num_samples
    figures["seconds"] = round(time.perf_counter() - start, 3)
    result = Figures("cas", {"prior": str(prior_dir), "dataset": str(corpus.meta["dataset"]["name"])}, figures)
    write_figures_file(target, "cas", result.to_dict(), overwrite)
    return result


def _held_out_images(cfg: PriorRecipeConfig, prior_dir: Path, layout: CodeLayout, dataset: str, limit: int | None):
    """The real images to test on: the eval corpus's split when there is one, else the data set's ``test`` split."""
    if corpus_path(cfg, prior_dir, "eval_corpus") is None:  # no eval corpus anywhere
        data = load_image_dataset(dataset, "test", root=cfg.data_root)
        n = len(data) if limit is None else min(limit, len(data))
        return data.images[:n], data.labels[:n]
    return corpus_images(find_corpus(cfg, prior_dir, "eval_corpus", layout), cfg.data_root, limit)
