"""Instruction tuning of a causal language model to write the 0/1 labels as text (``llm``; ``[llm]`` extra).

The seed's method 3: a chat model (default ``Qwen/Qwen2.5-7B-Instruct``, bf16 on a GPU) tuned with LoRA
(peft; r=8, alpha=32, dropout 0.1 on ``q_proj``, ``k_proj``, ``v_proj``, ``o_proj``). Each protein is cut
into chunks of at most ``chunk`` residues; each chunk is one example: the instruction and the sequence as
the user turn, the labels as the assistant turn (``[1,1,0,...]``, or a plain ``110...`` string with
``answer_format="string"``). The chat template is applied and the loss is computed on the answer tokens
only. Prediction generates greedily, optionally constrained to the answer's characters, and parses the
answer robustly: extra labels are cut and reported, and a missing or short answer is reported per protein;
residues without an answer get NaN, never a made-up label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import ModelError, require
from ..pretrained import load_adapter, load_causal_lm
from ..records import Record
from ._runtime import select_device
from .base import Estimator, Params, run_setting
from .trainer import Stage, Trainer, step_batches

INSTRUCTION = ("Predict the intrinsically disordered regions of this protein sequence. Answer with one label "
               "per residue, 1 for disordered and 0 for ordered.")


@dataclass
class LLMParams(Params):
    base: str = "Qwen/Qwen2.5-7B-Instruct"
    lora_r: int = 8
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    chunk: int = 256
    answer_format: str = "list"  # list: [1,0,...]; string: 10...
    epochs: int = 1
    lr: float = 1e-4
    batch_size: int = 1
    grad_accum: int = 8
    constrained: bool = True
    device: str = "auto"
    precision: str = "bf16"
    gradient_checkpointing: bool = False
    seed: int = 0
    progress: bool = run_setting(True)


def format_answer(labels: np.ndarray, fmt: str = "list") -> str:
    """The assistant's answer text for a label vector (unknown labels written as 0)."""
    bits = np.where(labels == 1, 1, 0)
    if fmt == "string":
        return "".join(map(str, bits.tolist()))
    return "[" + ",".join(map(str, bits.tolist())) + "]"


def chunk_records(records: Iterable[Record], chunk: int) -> list[tuple[str, int, str, np.ndarray | None]]:
    """(id, start, sub-sequence, labels) chunks of at most ``chunk`` residues."""
    out = []
    for r in records:
        for s in range(0, len(r), chunk):
            out.append((r.id, s, r.sequence[s:s + chunk], None if r.labels is None else r.labels[s:s + chunk]))
    return out


def instruction_examples(records: Iterable[Record], chunk: int = 256, fmt: str = "list") -> Iterable[dict]:
    """The seed's instruction records: ``instruction``, ``input``, ``output`` (plus id and offset)."""
    for rid, start, seq, lab in chunk_records(records, chunk):
        if lab is None:
            raise ModelError(f"record '{rid}': instruction data needs labels")
        yield {"id": rid, "start": start + 1, "instruction": INSTRUCTION, "input": seq,
               "output": format_answer(lab, fmt)}


@dataclass
class ParsedAnswer:
    """Labels read from a generated answer, with what went wrong if anything."""

    labels: np.ndarray  # float: 0/1, NaN where the answer gave nothing
    status: str  # ok | repaired (stray text ignored) | truncated | short | missing
    message: str = ""


def parse_answer(text: str, expected: int) -> ParsedAnswer:
    """Read 0/1 labels from generated text; cut extra labels, report a short or missing answer."""
    bracket = re.search(r"\[([^\]]*)\]?", text)
    body = bracket.group(1) if bracket else text
    bits = re.findall(r"[01]", body)
    stray = re.sub(r"[\s01,\[\]]", "", body)
    labels = np.full(expected, np.nan)
    if not bits:
        return ParsedAnswer(labels, "missing", f"no 0/1 answer in {text[:60]!r}")
    n = min(len(bits), expected)
    labels[:n] = np.array(bits[:n], dtype=float)
    note = f"; ignored stray text {stray[:30]!r}" if stray else ""
    if len(bits) > expected:
        return ParsedAnswer(labels, "truncated", f"{len(bits)} labels for {expected} residues, extra cut{note}")
    if len(bits) < expected:
        return ParsedAnswer(labels, "short", f"{len(bits)} labels for {expected} residues; "
                                             f"the last {expected - len(bits)} have no prediction (NaN){note}")
    if stray:
        return ParsedAnswer(labels, "repaired", note.lstrip("; "))
    return ParsedAnswer(labels, "ok")


class LLMTagger(Estimator):
    """LoRA-tuned causal LM that answers with the labels as text."""

    family = "llm"
    params_class = LLMParams

    def __init__(self, params=None, **kwargs):
        super().__init__(params, **kwargs)
        self._model = None
        self._tok = None

    def _messages(self, seq: str) -> list[dict]:
        return [{"role": "user", "content": f"{INSTRUCTION}\n{seq}"}]

    def _load_base(self):
        torch = require("torch", "llm")
        p = self.params
        self._device = select_device(torch, p.device)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(p.precision, torch.float32)
        if self._device.type == "cpu":
            dtype = torch.float32  # half precision matmuls are slow or missing on many CPUs
        self._tok, model = load_causal_lm(p.base, dtype)
        self._model = model.to(self._device)
        return self._model

    def _example_ids(self, seq: str, answer: str):
        tok = self._tok
        prompt = tok.apply_chat_template(self._messages(seq), tokenize=False, add_generation_prompt=True)
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        a_ids = tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        return p_ids + a_ids, [-100] * len(p_ids) + a_ids

    def _batch_loss(self, torch, batch):
        longest = max(len(ids) for ids, _ in batch)
        ids = torch.full((len(batch), longest), self._tok.pad_token_id, dtype=torch.long)
        lab = torch.full((len(batch), longest), -100, dtype=torch.long)
        att = torch.zeros((len(batch), longest), dtype=torch.long)
        for i, (a, b) in enumerate(batch):
            ids[i, :len(a)], lab[i, :len(b)], att[i, :len(a)] = torch.tensor(a), torch.tensor(b), 1
        return self._model(input_ids=ids.to(self._device), attention_mask=att.to(self._device),
                           labels=lab.to(self._device)).loss

    def fit(self, records: Sequence[Record], valid=None) -> "LLMTagger":
        torch = require("torch", "llm")
        peft = require("peft", "llm")
        p = self.params
        torch.manual_seed(p.seed)
        rng = np.random.default_rng(p.seed)
        examples = list(instruction_examples([r for r in records if r.labels is not None and r.track == "pdb"]
                                             or [r for r in records if r.labels is not None],
                                             p.chunk, p.answer_format))
        if not examples:
            raise ModelError("no labelled records to train on")
        self._load_base()
        if p.gradient_checkpointing:
            self._model.gradient_checkpointing_enable()
        cfg = peft.LoraConfig(task_type=peft.TaskType.CAUSAL_LM, r=p.lora_r, lora_alpha=p.lora_alpha,
                              lora_dropout=p.lora_dropout, target_modules=list(p.target_modules))
        self._model = peft.get_peft_model(self._model, cfg)
        opt = torch.optim.AdamW([w for w in self._model.parameters() if w.requires_grad], lr=p.lr)

        def train_epoch(stage: Stage, desc: str) -> float:
            order = rng.permutation(len(examples))
            batches = [[self._example_ids(examples[i]["input"], examples[i]["output"]) for i in order[k:k + p.batch_size]]
                       for k in range(0, len(order), p.batch_size)]
            self._model.train()
            return step_batches(batches, lambda b: self._batch_loss(torch, b), opt, p.grad_accum)

        # no held-out score: the answer-token loss is reported and every epoch is kept
        self.meta["history"] = Trainer("llm", p.epochs, p.progress).run(
            [Stage("train", p.epochs)], train_epoch, lambda stage: float("nan"))
        self.arrays = {"trained": np.array([1], dtype=np.int8)}
        self._model.eval()
        return self

    def _allowed_tokens(self) -> list[int]:
        """Token ids whose text holds only answer characters, and the end-of-turn token."""
        keep = []
        chars = set("01,[] ") if self.params.answer_format == "list" else set("01")
        for tid in range(len(self._tok)):
            text = self._tok.decode([tid])
            if text and set(text) <= chars:
                keep.append(tid)
        return keep + [self._tok.eos_token_id]

    def generate_answers(self, seqs: Sequence[str]) -> list[str]:
        """Raw generated answer text for each (chunk) sequence."""
        torch = require("torch", "llm")
        transformers = require("transformers", "llm")
        kwargs = {}
        if self.params.constrained:
            allowed = torch.tensor(self._allowed_tokens())

            class OnlyAnswer(transformers.LogitsProcessor):
                def __call__(self, input_ids, scores):
                    mask = torch.full_like(scores, float("-inf"))
                    mask[:, allowed.to(scores.device)] = 0
                    return scores + mask

            kwargs["logits_processor"] = transformers.LogitsProcessorList([OnlyAnswer()])
        out = []
        for seq in seqs:
            prompt = self._tok.apply_chat_template(self._messages(seq), tokenize=False, add_generation_prompt=True)
            ids = self._tok(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"].to(self._device)
            per_label = 2 if self.params.answer_format == "list" else 1
            with torch.no_grad():
                gen = self._model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                           max_new_tokens=per_label * len(seq) + 4,
                                           eos_token_id=self._tok.eos_token_id,
                                           pad_token_id=self._tok.pad_token_id, **kwargs)
            out.append(self._tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True))
        return out

    def _predict(self, sequences, track):
        if self._model is None:
            self._restore()
        self.report = []
        results = []
        for i, seq in enumerate(sequences):
            chunks = [seq[s:s + self.params.chunk] for s in range(0, len(seq), self.params.chunk)]
            parts = []
            for c, (chunk, text) in enumerate(zip(chunks, self.generate_answers(chunks))):
                parsed = parse_answer(text, len(chunk))
                if parsed.status != "ok":
                    self.report.append({"index": i, "chunk": c, "status": parsed.status, "message": parsed.message})
                parts.append(parsed.labels)
            results.append(np.concatenate(parts))
        return results

    def save(self, folder):
        folder = Path(folder)
        super().save(folder)
        self._model.save_pretrained(folder / "adapter")
        return folder

    def _restore(self):
        if self.folder is None or not (self.folder / "adapter").is_dir():
            raise ModelError("the LoRA adapter is missing from the model folder")
        self._load_base()
        self._model = load_adapter(self._model, str(self.folder / "adapter")).to(self._device)
        self._model.eval()


def instructions_text(records: Iterable[Record], chunk: int = 256, fmt: str = "list") -> Iterable[str]:
    """The instruction JSONL, one line per example."""
    import json

    for ex in instruction_examples(records, chunk, fmt):
        yield json.dumps(ex) + "\n"
