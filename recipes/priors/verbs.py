"""The prior verbs of ``vqtok``, added to :mod:`recipes.registry` when this module is imported.

    vqtok train-prior --corpus runs/fm/codes_train --eval-corpus runs/fm/codes_test --out runs/fm_pixelcnn
    vqtok sample --prior runs/fm_pixelcnn/prior --num-samples 8
    vqtok evaluate --config prior_pixelcnn prior=runs/fm_pixelcnn/prior       # bits/code, bits/dim
    vqtok cas --prior runs/fm_pixelcnn/prior cas.rejection_threshold=0.5

Every prior config has ``modality: prior``, so ``evaluate`` given a prior preset runs the prior's
evaluation (the other verbs exist for priors only).
"""

from __future__ import annotations

from recipes.registry import RECIPES, Recipe, Shortcut, Verb, register

_SCHEMA = "recipes.priors.config:PriorRecipeConfig"
_PRIOR = Shortcut("--prior", "prior", "prior directory (the 'prior' folder of a train-prior run)", "DIR")
_CORPUS = Shortcut("--corpus", "corpus", "code corpus written by `vqtok tokenize`", "DIR")
_DEVICE = Shortcut("--device", "device", "cpu, cuda, cuda:N or auto", "DEVICE")

register(
    Verb(
        "train-prior",
        "fit a gated PixelCNN / WaveNet-like / transformer prior over a code corpus; writes prior/ and checkpoint/",
        default_config="prior_pixelcnn",
        out_help="run directory (default runs/<name>)",
        shortcuts=(
            _CORPUS,
            Shortcut("--eval-corpus", "eval_corpus", "held-out code corpus for bits/code during training", "DIR"),
            Shortcut("--kind", "model.kind", "pixelcnn or transformer", "KIND"),
            Shortcut("--steps", "train.steps", "total optimizer steps", "N"),
            _DEVICE,
        ),
        resumable=True,
    ),
    Recipe("train-prior", "prior", "recipes.priors.train_prior:run", _SCHEMA),
)
register(
    Verb(
        "sample",
        "draw codes from a prior (class-conditional: per class) and decode them to a PNG grid or WAV files",
        default_config="prior_pixelcnn",
        out_help="output directory (default <prior>/../samples)",
        shortcuts=(
            _PRIOR,
            Shortcut("--num-samples", "sample.num_samples", "samples per class (or in all, unconditional)", "N"),
            Shortcut("--temperature", "sample.sampling.temperature", "divide the logits by this", "T"),
            Shortcut("--top-k", "sample.sampling.top_k", "keep the k most likely codes", "K"),
            Shortcut("--top-p", "sample.sampling.top_p", "keep the smallest set with this much probability", "P"),
            Shortcut("--seed", "sample.sampling.seed", "sampling seed", "N"),
            _DEVICE,
        ),
    ),
    Recipe("sample", "prior", "recipes.priors.sample:run", _SCHEMA),
)
register(
    Verb(
        "cas",
        "Classification Accuracy Score: a classifier trained on class-conditional samples, tested on real images",
        default_config="prior_pixelcnn",
        out_help="also write the figures to this JSON file",
        shortcuts=(
            _PRIOR,
            Shortcut("--samples-per-class", "cas.samples_per_class", "samples drawn per class", "N"),
            Shortcut("--rejection-threshold", "cas.rejection_threshold", "classifier-based rejection threshold", "P"),
            _DEVICE,
        ),
    ),
    Recipe("cas", "prior", "recipes.priors.cas:run", _SCHEMA),
)
# The shared evaluate verb, for a prior config: bits per code and bits/dim on held-out codes.
RECIPES[("evaluate", "prior")] = Recipe("evaluate", "prior", "recipes.priors.evaluate:run", _SCHEMA)
