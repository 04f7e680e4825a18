"""Tiny random VideoScore checkpoints built offline: a real Idefics2 or Qwen2-VL
configuration at toy sizes, a byte-level BPE tokenizer trained here on the model card's
prompt, the model family's real processor classes, and the weights written in the key
layout of TIGER-Lab's published checkpoints (mantis' ``*ForSequenceClassification``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from vidqa.models.videoscore import REGRESSION_QUERY_PROMPT, head_class

PROMPT_CORPUS = [REGRESSION_QUERY_PROMPT, "Near the Elephant Gate village, they approach the haunted house at night.",
                 "user assistant system"]
QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>"]
# Qwen2-VL's chat template, reduced to what a user turn with a video and text needs.
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}{% if c['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _bpe(special: list[str], bos: Optional[str] = None) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(PROMPT_CORPUS * 4, trainer)
    if bos is not None:  # Mistral's tokenizer starts every text with <s>
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))])
    return tok


def _write(module: torch.nn.Module, folder: Path, rename=lambda k: k, drop_head: bool = False) -> None:
    state = {rename(k): v.contiguous() for k, v in module.state_dict().items()
             if not (drop_head and k.startswith("score."))}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


TOY_IDEFICS2 = dict(
    vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=70,
                patch_size=14),
    perceiver=dict(hidden_size=32, hidden_act="silu", resampler_n_latents=4, resampler_depth=1, resampler_n_heads=2,
                   resampler_head_dim=8, num_key_value_heads=1),
    text=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2),
    image_size={"shortest_edge": 42, "longest_edge": 70},
)
# Idefics2-8B (Mantis-8B-Idefics2, the VideoScore backbone): Mistral-7B + SigLIP-so400m.
REAL_IDEFICS2 = dict(
    vision=dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                image_size=980, patch_size=14),
    perceiver=dict(hidden_size=4096, hidden_act="silu", resampler_n_latents=64, resampler_depth=3,
                   resampler_n_heads=16, resampler_head_dim=96, num_key_value_heads=4),
    text=dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
              num_key_value_heads=8),
    image_size={"shortest_edge": 378, "longest_edge": 980},
)


def idefics2_parts(sizes: dict = TOY_IDEFICS2):
    """An Idefics2 VideoScore ``(config, processor)`` at ``sizes`` (no weights)."""
    from transformers import Idefics2Config, Idefics2Processor, PreTrainedTokenizerFast
    from transformers.models.idefics2.image_processing_pil_idefics2 import Idefics2ImageProcessorPil

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=_bpe(["<unk>", "<s>", "</s>"], bos="<s>"),
                                        bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<unk>")
    image_processor = Idefics2ImageProcessorPil(do_image_splitting=False, size=sizes["image_size"])
    n_latents = sizes["perceiver"]["resampler_n_latents"]
    processor = Idefics2Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=n_latents)
    config = Idefics2Config(
        vision_config=sizes["vision"], perceiver_config=sizes["perceiver"],
        text_config=dict(model_type="mistral", vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                         **sizes["text"]),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), num_labels=5,
        pad_token_id=tokenizer.pad_token_id,
    )
    return config, processor


def _build_checkpoint(family: str, parts, folder: Path, seed: int, drop_head: bool, bias: list[float],
                      rename=lambda k: k) -> torch.nn.Module:
    folder.mkdir(parents=True, exist_ok=True)
    config, processor = parts()
    torch.manual_seed(seed)
    model = head_class(family)(config).eval()
    with torch.no_grad():  # a visible head bias, so a dropped bias would show
        model.score.bias.copy_(torch.tensor(bias))
    config.save_pretrained(folder)
    processor.save_pretrained(folder)
    _write(model, folder, rename=rename, drop_head=drop_head)
    return model


def build_idefics2_checkpoint(folder: Path, seed: int = 0, drop_head: bool = False) -> torch.nn.Module:
    """A 2-layer Idefics2 VideoScore checkpoint in ``folder``; returns the model written."""
    return _build_checkpoint("idefics2", idefics2_parts, folder, seed, drop_head, [2.5, 2.0, 3.0, 1.5, 2.2])


def _mantis_qwen_key(key: str) -> str:
    """current transformers' layout -> the published checkpoints' (visual.*, model.* = text)."""
    if key.startswith("model.visual."):
        return key[len("model."):]
    if key.startswith("model.language_model."):
        return "model." + key[len("model.language_model."):]
    return key


TOY_QWEN2_VL = dict(
    text=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              rope_parameters={"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 10000.0}),
    vision=dict(depth=2, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2, patch_size=14, spatial_merge_size=2,
                temporal_patch_size=2),
    pixels=dict(min_pixels=28 * 28, max_pixels=28 * 28 * 64),
)
# Qwen2-VL-7B (the VideoScore-Qwen2-VL backbone).
REAL_QWEN2_VL = dict(
    text=dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
              num_key_value_heads=4,
              rope_parameters={"rope_type": "default", "mrope_section": [16, 24, 24], "rope_theta": 1000000.0}),
    vision=dict(depth=32, embed_dim=1280, hidden_size=3584, num_heads=16, mlp_ratio=4, patch_size=14,
                spatial_merge_size=2, temporal_patch_size=2),
    pixels=dict(min_pixels=56 * 56, max_pixels=28 * 28 * 1280),
)


def qwen2_vl_parts(sizes: dict = TOY_QWEN2_VL):
    """A Qwen2-VL VideoScore ``(config, processor)`` at ``sizes`` (no weights)."""
    from transformers import PreTrainedTokenizerFast, Qwen2VLConfig, Qwen2VLProcessor
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=_bpe(QWEN_SPECIAL), eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>")
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**sizes["pixels"]),
        video_processor=Qwen2VLVideoProcessor(**sizes["pixels"]),
        tokenizer=tokenizer, chat_template=QWEN_CHAT_TEMPLATE,
    )
    ids = dict(zip(QWEN_SPECIAL, tokenizer.convert_tokens_to_ids(QWEN_SPECIAL)))
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=len(tokenizer), pad_token_id=ids["<|endoftext|>"],
                         bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], **sizes["text"]),
        vision_config=sizes["vision"],
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"], num_labels=5,
    )
    return config, processor


def build_qwen2_vl_checkpoint(folder: Path, seed: int = 0, drop_head: bool = False) -> torch.nn.Module:
    """A 2-layer Qwen2-VL VideoScore checkpoint in ``folder``, in the published key layout."""
    return _build_checkpoint("qwen2_vl", qwen2_vl_parts, folder, seed, drop_head, [3.5, 3.5, 3.7, 3.1, 3.6],
                             rename=_mantis_qwen_key)
