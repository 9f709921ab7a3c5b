"""The speech units modality plug-in: the speech plug-in with a units tokenizer and its staged training.

Everything but the tokenizer class and the training (data, corpora, evaluation, reconstructions, the
rate verbs) is :class:`~modalities.speech.task.SpeechModality`'s, so every speech verb works on units.
"""

from __future__ import annotations

from modalities.speech.task import SpeechModality
from modalities.speech.units.tokenizer import UnitsTokenizer
from modalities.speech.units.training import UnitsTraining


class SpeechUnitsModality(SpeechModality):
    """Speech through self-supervised units (:class:`~modalities.speech.units.UnitsTokenizer`)."""

    name = "speech-units"
    tokenizer_class = UnitsTokenizer
    training = staticmethod(
        UnitsTraining.build
    )  # masked prediction, codebook, decoder (modalities.speech.units.training)
