"""Reference clips for a tokenizer that decodes in the voice of a clip: which clip speaks for which utterance.

Dimension legend: ``b`` batch, ``N`` training segments.

The reference must be another utterance of the same speaker, so that the speaker vector cannot
carry what the decoded utterance says; only a speaker with one utterance is their own reference.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def own_speaker_references(speakers: Sequence[str]) -> list[int]:
    """For each utterance, the index of the next utterance by the same speaker (cyclically), or its own
    index where the speaker has no other: ``["a", "b", "a"]`` → ``[2, 1, 0]``. Deterministic."""
    by_speaker: dict[str, list[int]] = {}
    for i, speaker in enumerate(speakers):
        by_speaker.setdefault(speaker, []).append(i)
    partner = list(range(len(speakers)))
    for members in by_speaker.values():
        for j, i in enumerate(members):
            partner[i] = members[(j + 1) % len(members)]
    return partner


class ReferenceSampler:
    """Draws, for training segments, a segment of another utterance by the same speaker.

    Args:
        speakers: ``(N,)`` speaker index of each segment.
        utterances: ``(N,)`` utterance index of each segment.
    """

    TRIES = 8  # redraws of a reference that came from the segment's own utterance

    def __init__(self, speakers: torch.Tensor, utterances: torch.Tensor) -> None:
        if speakers.shape != utterances.shape or speakers.ndim != 1:
            raise ValueError(
                f"speakers and utterances must be (N,) each; got {tuple(speakers.shape)} and {tuple(utterances.shape)}."
            )
        self.utterances = utterances.long().cpu()
        self.speakers = speakers.long().cpu()
        self.order = torch.argsort(self.speakers, stable=True)  # segments grouped by speaker
        self.count = torch.bincount(self.speakers)  # (speakers,) segments of each
        self.start = torch.cumsum(self.count, 0) - self.count
        # Whether each speaker has more than one utterance (else their own utterance is the only reference).
        self.several = torch.tensor([self.utterances[self.speakers == s].unique().numel() > 1
                                     for s in range(len(self.count))])  # fmt: skip

    def sample(self, indices: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reference segment indices ``(b,)`` for segments ``indices`` ``(b,)``: same speaker, another utterance
        where the speaker has one."""
        indices = indices.long().cpu()
        speaker = self.speakers[indices]
        picked = torch.empty_like(indices)
        todo = torch.ones_like(indices, dtype=torch.bool)
        for _ in range(self.TRIES):
            draw = (torch.rand(len(indices), generator=generator) * self.count[speaker]).long()
            candidate = self.order[self.start[speaker] + draw.clamp_max(self.count[speaker] - 1)]
            ok = (self.utterances[candidate] != self.utterances[indices]) | ~self.several[speaker]
            take = todo & ok
            picked[take] = candidate[take]
            todo &= ~ok
            if not todo.any():
                return picked
        # The speaker's other utterances are rare among their segments: the first segment of another one.
        for row in todo.nonzero().flatten().tolist():
            s, own = int(speaker[row]), int(self.utterances[indices[row]])
            members = self.order[self.start[s] : self.start[s] + self.count[s]]
            picked[row] = members[self.utterances[members] != own][0]
        return picked
