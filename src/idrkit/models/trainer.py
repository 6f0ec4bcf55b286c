"""The one training loop of the trainable families: epochs in stages, early stopping on a held-out
score, history, checkpoints and progress. Each family supplies an epoch function (built on
:func:`step_batches`) and a scoring function; the loop owns everything else.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ._runtime import NullBar


@dataclass
class Stage:
    """A run of epochs; ``reset_best`` starts early stopping afresh (e.g. fine-tuning after pretraining)."""

    name: str
    epochs: int
    reset_best: bool = False


@dataclass
class Trainer:
    """Runs stages of epochs and keeps the state with the best held-out score.

    ``train_epoch(stage, description) -> mean loss`` trains one epoch; ``score(stage) -> float`` is the
    held-out score (NaN when there is none: every epoch then counts as the best so far);
    ``snapshot() -> state`` and ``restore(state)`` copy the weights; ``checkpoint()`` saves after each epoch.
    """

    name: str
    patience: int = 3
    progress: bool = True
    checkpoint: Callable[[], None] | None = None

    def run(self, stages: Sequence[Stage], train_epoch: Callable[[Stage, str], float],
            score: Callable[[Stage], float], snapshot: Callable[[], Any] | None = None,
            restore: Callable[[Any], None] | None = None) -> list[dict]:
        history: list[dict] = []
        best, best_state, bad = -math.inf, None, 0
        total = sum(s.epochs for s in stages)
        epoch_no = 0
        for stage in stages:
            if stage.reset_best:
                best, best_state, bad = -math.inf, None, 0
            for _ in range(stage.epochs):
                epoch_no += 1
                t0 = time.time()
                loss = train_epoch(stage, f"{stage.name} epoch {epoch_no}/{total}")
                value = score(stage)
                history.append({"stage": stage.name, "epoch": epoch_no, "loss": loss, "valid_auc": value,
                                "seconds": round(time.time() - t0, 1)})
                if self.progress:
                    print(f"[{self.name}] {stage.name} epoch {epoch_no}: loss {loss:.4f} held-out AUC {value:.4f} "
                          f"({time.time() - t0:.0f} s)", flush=True)
                if self.checkpoint:
                    self.checkpoint()
                if value > best or not math.isfinite(value):
                    best, bad = value, 0
                    best_state = snapshot() if snapshot else None
                else:
                    bad += 1
                    if bad >= self.patience:
                        break
        if best_state is not None and restore:
            restore(best_state)
        return history


def step_batches(batches: Sequence, loss_fn: Callable[[Any], Any], optimizer, grad_accum: int = 1,
                 clip: Sequence | None = None, scheduler=None, bar=None) -> float:
    """One pass over ``batches``: backward each loss, step every ``grad_accum`` batches and at the end.

    ``clip`` (parameters) clips the gradient norm to 1; ``scheduler`` steps with the optimizer.
    Returns the mean loss.
    """
    import torch

    bar = bar or NullBar()
    losses = []
    for step, batch in enumerate(batches):
        loss = loss_fn(batch)
        (loss / grad_accum).backward()
        if (step + 1) % grad_accum == 0 or step + 1 == len(batches):
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(clip, 1.0)
            optimizer.step()
            optimizer.zero_grad()
            if scheduler is not None:
                scheduler.step()
        losses.append(float(loss.detach()))
        bar.update(1)
    bar.close()
    return sum(losses) / len(losses) if losses else float("nan")


def masked_bce(torch, logits, target, weights):
    """Binary cross-entropy of logits against (soft) targets, weighted per residue (0 = ignored)."""
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (bce * weights).sum() / weights.sum().clamp_min(1.0)


def head_bce(torch, logits, y, head_weights, pos_weight):
    """:func:`masked_bce` of per-head logits (B, L, heads) against targets ``y`` with NaN where unknown:
    each head weighted by ``head_weights``, positive hard labels (> 0.5) by ``pos_weight`` (soft teacher
    targets keep 1 where they are below 0.5)."""
    known = ~torch.isnan(y)
    target = torch.nan_to_num(y)
    cls_w = torch.where(target > 0.5, pos_weight.expand_as(target), torch.ones_like(target))
    return masked_bce(torch, logits.float(), target, known * head_weights * cls_w)
