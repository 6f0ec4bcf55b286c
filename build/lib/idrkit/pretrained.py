"""Loading pretrained Hugging Face models (``from_pretrained``): protein LM backbones and causal LMs.

A name (``facebook/esm2_t6_8M_UR50D``, ``Qwen/Qwen2.5-7B-Instruct``) or a local folder; nothing else in
idrkit calls ``from_pretrained`` for a base model.
"""

from __future__ import annotations

from .errors import require


def load_backbone(source: str, extra: str = "plm"):
    """(tokenizer, encoder model) of an ESM-style protein language model, without a pooling layer."""
    transformers = require("transformers", extra)
    tokenizer = transformers.AutoTokenizer.from_pretrained(source)
    config = transformers.AutoConfig.from_pretrained(source)
    if "esm" in str(getattr(config, "model_type", "")):
        model = transformers.AutoModel.from_pretrained(source, add_pooling_layer=False)
    else:
        model = transformers.AutoModel.from_pretrained(source)
    return tokenizer, model


def load_causal_lm(source: str, dtype=None, extra: str = "llm"):
    """(tokenizer, causal LM) of an instruction-tuned model; the pad token falls back to end-of-sequence."""
    transformers = require("transformers", extra)
    tokenizer = transformers.AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = transformers.AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    return tokenizer, model


def load_adapter(model, folder: str):
    """A base model with the LoRA adapter saved in ``folder`` (peft)."""
    peft = require("peft", "plm")
    return peft.PeftModel.from_pretrained(model, folder)
