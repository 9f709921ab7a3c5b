"""Speech tokenizer speed as a real-time factor: seconds of compute per second of audio (lower is faster).

    python benchmarks/speech_tokenizer.py                      # table
    python benchmarks/speech_tokenizer.py --json               # {"rows": [...], "machine": {...}}
    python benchmarks/speech_tokenizer.py --quick              # tiny models, short audio: a smoke run
    python benchmarks/speech_tokenizer.py --tokenizer runs/speech_festival/tokenizer   # a trained one too
    python benchmarks/speech_tokenizer.py --device cuda

For each model one utterance of ``--seconds`` of audio is timed through three paths, each the
median of ``--repeats`` runs after a warm-up: ``encode`` (waveform → codes, front end included),
``decode_mel`` (codes → log-mel) and ``decode_wave`` (codes → waveform through Griffin-Lim). Speed
does not depend on the weights, so the preset architectures are freshly initialised; the input is
noise at the model's rate (the cost does not depend on the content either).
"""

from __future__ import annotations

import sys

import torch
from _cli import add_repeats_and_device, benchmark_parser, median_of, parse_with_defaults, print_heading, report
from _timing import machine, median_seconds

from modalities.speech import FrontEndConfig, SpeechTokenizer, SpeechTokenizerConfig

# (name, config) of the architectures the speech presets train
CASES = [
    ("festival 16k 50Hz K128", SpeechTokenizerConfig(hidden_channels=128, num_res_blocks=2, speakers=["a", "b"])),
    (
        "fsdd 8k 50Hz K128",
        SpeechTokenizerConfig(
            frontend=FrontEndConfig(sample_rate=8000, n_fft=256, win_length=200, hop_length=80, n_mels=64),
            hidden_channels=128,
            num_res_blocks=2,
            speakers=["a", "b", "c", "d", "e"],
        ),
    ),
    ("default 16k 50Hz K128 h256", SpeechTokenizerConfig(speakers=["a"])),
    ("rvq 16k 25Hz 4x K256", SpeechTokenizerConfig(downsample=4, quantizer="rvq", num_quantizers=4, codebook_size=256)),
    (  # the first row, encoding with the dynamic programme of duration_penalty
        "festival, duration penalty 2",
        SpeechTokenizerConfig(hidden_channels=128, num_res_blocks=2, speakers=["a", "b"], duration_penalty=2.0),
    ),
]
QUICK = {"hidden_channels": 16, "num_res_blocks": 1, "codebook_size": 16, "code_dim": 8, "griffin_lim_iters": 2}


def measure(name: str, tok: SpeechTokenizer, seconds: float, repeats: int, device: torch.device) -> dict:
    tok = tok.to(device).eval()
    rate = tok.sample_rate
    wave = 0.1 * torch.randn(int(seconds * rate), generator=torch.Generator().manual_seed(0)).to(device)
    codes = tok.encode(wave, rate)
    speaker = 0 if tok.speakers else None
    encode_s = median_seconds(lambda: tok.encode(wave, rate), repeats, device)
    mel_s = median_seconds(lambda: tok.decode_features(codes, speaker), repeats, device)
    wave_s = median_seconds(lambda: tok.decode(codes, speaker), repeats, device)
    print(f"  measured {name}", file=sys.stderr, flush=True)
    return {
        "model": name,
        "sample_rate": rate,
        "code_rate": tok.frame_rate,
        "levels": codes.num_levels,
        "bitrate": tok.config.bitrate,
        "parameters": sum(p.numel() for p in tok.parameters()),
        "audio_seconds": seconds,
        "griffin_lim_iters": tok.config.griffin_lim_iters,
        "duration_penalty": tok.config.duration_penalty,
        "encode_rtf": encode_s / seconds,
        "decode_mel_rtf": mel_s / seconds,
        "decode_wave_rtf": wave_s / seconds,
    }


def run(seconds: float, repeats: int, device: torch.device, quick: bool, tokenizers: list[str]) -> dict:
    torch.manual_seed(0)
    rows = []
    for name, config in CASES:
        if quick:
            config = SpeechTokenizerConfig.from_dict({**config.to_dict(), **QUICK})
        rows.append(measure(name, SpeechTokenizer(config), seconds, repeats, device))
    for path in tokenizers:
        rows.append(measure(path, SpeechTokenizer.from_pretrained(path), seconds, repeats, device))
    return {"rows": rows, "machine": machine(device), "quick": quick, "repeats": repeats}


def print_table(result: dict) -> None:
    print_heading(
        f"{'model':<28} {'params':>9} {'bit/s':>6} {'encode':>8} {'decode mel':>11} {'decode wave':>12}",
        median_of(result),
        "real-time factor = compute seconds / audio seconds (lower is faster; 0.01 = 100x real time)",
    )
    for r in result["rows"]:
        print(
            f"{r['model'][-28:]:<28} {r['parameters']:>9,} {r['bitrate']:>6.0f} {r['encode_rtf']:>8.4f} "
            f"{r['decode_mel_rtf']:>11.4f} {r['decode_wave_rtf']:>12.4f}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = benchmark_parser(__doc__, "tiny models, 1 s of audio, 2 repeats (smoke run)")
    parser.add_argument("--seconds", type=float, default=None, help="audio length (default 10; 1 with --quick)")
    add_repeats_and_device(parser, repeats=5)
    parser.add_argument("--tokenizer", action="append", default=[], help="also time this trained tokenizer directory")
    args = parse_with_defaults(parser, argv, seconds=(10.0, 1.0), repeats=(5, 2))
    with torch.inference_mode():
        result = run(args.seconds, args.repeats, torch.device(args.device), args.quick, args.tokenizer)
    report(result, args.json, print_table)


if __name__ == "__main__":
    main()
