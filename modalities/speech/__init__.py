"""Speech tokenizers (a VQ-VAE on log-mel), speech data sets, phone analysis of codes, voice conversion.

>>> import torch
>>> from modalities.speech import SpeechTokenizer, SpeechTokenizerConfig
>>> tok = SpeechTokenizer(SpeechTokenizerConfig(hidden_channels=16, num_res_blocks=1, codebook_size=32,
...                                             code_dim=8, speakers=["ann", "bob"]))
>>> codes = tok.encode(0.1 * torch.randn(8000), sample_rate=8000)   # 1 s at 8 kHz, resampled to 16 kHz
>>> codes.codes.shape, codes.frame_rate
(torch.Size([1, 51]), 50.0)
>>> tok.decode(codes, speaker="bob").shape
torch.Size([1, 16160])
"""

from modalities.speech.audio import AudioError, check_waveform, load_audio, resample, save_audio, to_mono
from modalities.speech.baselines import kmeans_codes, mfcc_frames
from modalities.speech.config import SpeechTokenizerConfig
from modalities.speech.convert import convert_voice
from modalities.speech.data import Selection, Utterance, find_data_folder, list_utterances, select, speakers_of
from modalities.speech.frontend import FrontEnd, FrontEndConfig, mfcc_features
from modalities.speech.labels import (
    PHONE_MAPS,
    TIMIT_61_TO_39,
    PhoneSegment,
    apply_phone_map,
    frame_labels,
    read_phn,
    read_textgrid,
)
from modalities.speech.metrics import SpeechReconstruction, evaluate_reconstruction, log_mel_distance, stoi_score
from modalities.speech.phones import AlignedFrames, PhoneMetrics, align, fit_mapping, phone_metrics, random_codes
from modalities.speech.plots import confusion_png
from modalities.speech.synthetic import write_synthetic_corpus
from modalities.speech.tokenizer import SpeechCodes, SpeechTokenizer, SpeechTokenizerOutput

__all__ = [
    "PHONE_MAPS",
    "TIMIT_61_TO_39",
    "AlignedFrames",
    "AudioError",
    "FrontEnd",
    "FrontEndConfig",
    "PhoneMetrics",
    "PhoneSegment",
    "Selection",
    "SpeechCodes",
    "SpeechReconstruction",
    "SpeechTokenizer",
    "SpeechTokenizerConfig",
    "SpeechTokenizerOutput",
    "Utterance",
    "align",
    "apply_phone_map",
    "check_waveform",
    "confusion_png",
    "convert_voice",
    "evaluate_reconstruction",
    "find_data_folder",
    "fit_mapping",
    "frame_labels",
    "kmeans_codes",
    "list_utterances",
    "load_audio",
    "log_mel_distance",
    "mfcc_features",
    "mfcc_frames",
    "phone_metrics",
    "random_codes",
    "read_phn",
    "read_textgrid",
    "resample",
    "save_audio",
    "select",
    "speakers_of",
    "stoi_score",
    "to_mono",
    "write_synthetic_corpus",
]
