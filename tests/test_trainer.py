"""The one training loop: stages, early stopping, history, checkpoints."""

import math

import pytest

from idrkit.models.trainer import Stage, Trainer, step_batches


def test_early_stopping_keeps_the_best_state_and_resets_between_stages():
    scores = iter([0.5, 0.7, 0.6, 0.65, 0.1, 0.2, 0.3, 0.25])
    state = {"epoch": 0}
    checkpoints = []

    def train_epoch(stage, desc):
        state["epoch"] += 1
        return 1.0 / state["epoch"]

    trainer = Trainer("test", patience=2, progress=False, checkpoint=lambda: checkpoints.append(state["epoch"]))
    restored = []
    history = trainer.run([Stage("pretrain", 5), Stage("train", 4, reset_best=True)], train_epoch,
                          lambda stage: next(scores), lambda: dict(state), restored.append)
    # pretrain: 0.5, 0.7 (best), 0.6, 0.65 -> two epochs without gain: stop after 4
    # train starts afresh: 0.1, 0.2, 0.3 (best), 0.25
    assert [h["stage"] for h in history] == ["pretrain"] * 4 + ["train"] * 4
    assert [h["epoch"] for h in history] == list(range(1, 9))
    assert checkpoints == list(range(1, 9))
    assert restored == [{"epoch": 7}]


def test_without_a_score_every_epoch_is_kept():
    trainer = Trainer("llm", patience=1, progress=False)
    history = trainer.run([Stage("train", 3)], lambda s, d: 0.5, lambda s: float("nan"))
    assert len(history) == 3 and all(math.isnan(h["valid_auc"]) for h in history)


def test_step_batches_accumulates_gradients():
    torch = pytest.importorskip("torch")
    w = torch.nn.Parameter(torch.zeros(1))
    steps = []

    class Opt:
        def step(self):
            steps.append(float(w.grad))

        def zero_grad(self):
            w.grad = None

    loss = step_batches([1.0, 2.0, 3.0], lambda b: (w - b).pow(2).sum(), Opt(), grad_accum=2)
    assert loss == pytest.approx((1 + 4 + 9) / 3)
    # two batches accumulated (mean of -2 and -4), then the last one alone at the end of the pass (-6 / 2)
    assert steps == [pytest.approx(-3.0), pytest.approx(-3.0)]
