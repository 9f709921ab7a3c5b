"""A tiny synthetic speech corpus with exact phone labels, made on the spot: for tests, demos and smoke runs.

Each "phone" is a sound with its own spectral shape: vowels are harmonic tones under two formant
peaks, ``s`` is high-passed noise, ``pau`` is near silence. Each speaker has its own pitch, so a
speaker-conditioned tokenizer has something to factor out. Files follow the ``folders`` layout::

    root/<speaker>/u001.wav   16-bit PCM
    root/<speaker>/u001.phn   TIMIT style: start_sample end_sample phone
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

# Formant centres in Hz of each voiced phone; None marks the unvoiced ones.
PHONES: dict[str, tuple[float, float] | None] = {
    "aa": (700.0, 1200.0),
    "iy": (300.0, 2300.0),
    "uw": (320.0, 900.0),
    "m": (250.0, 1000.0),
    "s": None,
    "pau": None,
}


def _phone_audio(phone: str, n: int, f0: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / sample_rate
    if phone == "pau":
        return 1e-3 * rng.standard_normal(n)
    if phone == "s":
        noise = rng.standard_normal(n)
        return 0.1 * np.diff(noise, prepend=0.0)  # first difference: a crude high-pass
    formants = PHONES[phone]
    assert formants is not None, f"voiced phone {phone!r} needs formants"
    wave = np.zeros(n)
    for h in range(1, int(sample_rate / 2 / f0)):
        f = h * f0
        gain = sum(np.exp(-(((f - c) / 150.0) ** 2)) for c in formants) + 0.02
        wave += gain * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return 0.3 * wave / max(np.abs(wave).max(), 1e-9)


def write_synthetic_corpus(
    root: str | os.PathLike[str],
    num_speakers: int = 2,
    utterances_per_speaker: int = 4,
    sample_rate: int = 16000,
    seed: int = 0,
) -> Path:
    """Write the corpus described in the module docstring under ``root``; returns ``root``.

    Utterances are 0.4–1 s: a pause, 3 to 6 random phones of 50–150 ms, a pause. Speaker ``i`` is
    called ``spk{i}`` and speaks at a pitch of ``110 + 60 i`` Hz. Deterministic for a given ``seed``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    speech = [p for p in PHONES if p != "pau"]
    for s in range(num_speakers):
        folder = root / f"spk{s}"
        folder.mkdir(parents=True, exist_ok=True)
        f0 = 110.0 + 60.0 * s
        for u in range(1, utterances_per_speaker + 1):
            sequence = ["pau", *rng.choice(speech, size=int(rng.integers(3, 7))), "pau"]
            pieces, lines, start = [], [], 0
            for phone in sequence:
                n = int(sample_rate * rng.uniform(0.05, 0.15))
                pieces.append(_phone_audio(str(phone), n, f0, sample_rate, rng))
                lines.append(f"{start} {start + n} {phone}")
                start += n
            sf.write(
                str(folder / f"u{u:03d}.wav"), np.concatenate(pieces).astype(np.float32), sample_rate, subtype="PCM_16"
            )
            (folder / f"u{u:03d}.phn").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root
