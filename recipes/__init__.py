"""Runnable pipelines over the toolkit, their YAML presets, and the ``vqtok`` command line.

Each recipe is a small importable module with ``run(cfg) -> result``; ``cfg`` is a dataclass
schema filled from a preset in ``recipes/configs`` (or a YAML file) and dotted overrides::

    >>> from recipes.engine.config import load_config                      # doctest: +SKIP
    >>> from recipes.tokenizer.config import ImageRecipeConfig             # doctest: +SKIP
    >>> cfg = load_config(ImageRecipeConfig, "tiny", ["train.steps=20"])  # doctest: +SKIP
    >>> from recipes.tokenizer import train                            # doctest: +SKIP
    >>> result = train.run(cfg)                              # doctest: +SKIP

The same from a shell: ``vqtok train-tokenizer --config tiny train.steps=20``.
"""
