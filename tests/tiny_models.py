"""Tiny randomly initialised Hugging Face models built by the tests (no downloads)."""

from __future__ import annotations

from pathlib import Path

ESM_VOCAB = ["<cls>", "<pad>", "<eos>", "<unk>", "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P", "K",
             "Q", "N", "F", "Y", "M", "H", "W", "C", "X", "B", "U", "Z", "O", ".", "-", "<null_1>", "<mask>"]


def tiny_esm(folder: Path, max_positions: int = 66) -> Path:
    """A 2-layer ESM-2-style model with the real ESM vocabulary, saved with its tokenizer."""
    import torch
    from transformers import EsmConfig, EsmForMaskedLM, EsmTokenizer

    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(ESM_VOCAB) + "\n")
    tok = EsmTokenizer(str(folder / "vocab.txt"))
    cfg = EsmConfig(vocab_size=len(ESM_VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64, max_position_embeddings=max_positions, pad_token_id=1,
                    mask_token_id=32, position_embedding_type="rotary", token_dropout=False)
    EsmForMaskedLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def tiny_qwen(folder: Path) -> Path:
    """A 2-layer Qwen2 causal LM with a small character-level tokenizer and a chat template."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    chars = list("ACDEFGHIKLMNPQRSTVWYXBZJUO0123456789[],: .\n-abcdefghijklmnopqrstuvwxyz_")
    vocab = {t: i for i, t in enumerate(specials + chars)}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|endoftext|>"))
    tk.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  additional_special_tokens=specials[1:])
    tok.chat_template = template
    cfg = Qwen2Config(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                      eos_token_id=vocab["<|im_end|>"], pad_token_id=vocab["<|endoftext|>"],
                      tie_word_embeddings=True)
    Qwen2ForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
