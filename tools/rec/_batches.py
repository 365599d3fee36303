"""Padded tensors from event sequences: items, the scaled gap after each event, lengths."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .data import EvalCase
from .models import scale_gaps

__all__ = ["case_batch", "gap_scale_of", "gaps_after", "median_gap_of", "pad",
           "training_windows"]


def pad(rows: Sequence[Sequence[int]], gaps: Sequence[Sequence[float]],
        gap_scale: float) -> tuple[Tensor, Tensor, Tensor]:
    """Right-padded (B, L) items, (B, L) scaled gaps (0 at padding) and (B,) lengths;
    `gaps[b][i]` is the seconds from event i to the moment event i + 1 is predicted."""
    width = max(len(r) for r in rows)
    items = torch.zeros(len(rows), width, dtype=torch.long)
    seconds = torch.zeros(len(rows), width)
    for b, (row, gap) in enumerate(zip(rows, gaps, strict=True)):
        items[b, :len(row)] = torch.tensor(row, dtype=torch.long)
        seconds[b, :len(gap)] = torch.tensor(gap, dtype=torch.float32)
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    return items, scale_gaps(seconds, gap_scale), lengths


def gaps_after(times: Sequence[float], until: float) -> list[float]:
    """Seconds from each event to the next one, the last to `until`."""
    return [b - a for a, b in zip(times, [*times[1:], until], strict=True)]


def case_batch(cases: Sequence[EvalCase], max_len: int,
               gap_scale: float) -> tuple[Tensor, Tensor, Tensor]:
    """The last `max_len` events of each `EvalCase`, the last gap up to its target."""
    rows, gaps = [], []
    for case in cases:
        rows.append(case.history[-max_len:])
        gaps.append(gaps_after(case.times[-max_len:], case.target_time))
    return pad(rows, gaps, gap_scale)


def training_windows(train: Sequence[tuple[Sequence[int], Sequence[float]]],
                     max_len: int) -> list[tuple[tuple[int, ...], tuple[float, ...]]]:
    """Each training sequence cut from its end into windows of up to `max_len` + 1 events
    (inputs and next-item targets), overlapping by one: every transition is a target once."""
    windows = []
    for seq, ts in train:
        end = len(seq)
        while end >= 2:
            start = max(0, end - max_len - 1)
            windows.append((tuple(seq[start:end]), tuple(ts[start:end])))
            end = start + 1
            if start == 0:
                break
    return windows


def _positive_log_gaps(train: Sequence[tuple[Sequence[int], Sequence[float]]]) -> Tensor:
    gaps = [b - a for _, ts in train for a, b in zip(ts, ts[1:], strict=False)]
    seconds = torch.tensor(gaps or [0.0], dtype=torch.float64)
    return torch.log1p(seconds.clamp(min=0) / 3600.0)


def gap_scale_of(train: Sequence[tuple[Sequence[int], Sequence[float]]]) -> float:
    """The 99th percentile of log1p(hours) between training events (1 when there are no
    gaps): a long gap is dt = 1 for the ODE. (A mean would not do: in MovieLens half the
    gaps are 0 s, rated in one sitting, and the rare months-long ones would be dt > 100.)"""
    logs = _positive_log_gaps(train)
    high = float(torch.quantile(logs, 0.99)) if len(logs) < 16_000_000 else float(logs.max())
    return high if high > 1e-6 else 1.0


def median_gap_of(train: Sequence[tuple[Sequence[int], Sequence[float]]]) -> float:
    """The median seconds between training events: the gap assumed where none is known."""
    gaps = sorted(b - a for _, ts in train for a, b in zip(ts, ts[1:], strict=False))
    return float(gaps[len(gaps) // 2]) if gaps else 0.0
