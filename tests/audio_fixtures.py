"""Tiny random transformers audio models built offline from real classes: a Wav2Vec2 CTC
speech recogniser (character vocabulary written here) and a Wav2Vec2 audio classifier with
AudioSet-style labels. Saved as ordinary model folders, loaded through the real factory."""

from __future__ import annotations

import json
from pathlib import Path

import torch

CHARS = "abcdefghijklmnopqrstuvwxyz'"
LABELS = ("frying (food)", "speech", "music", "silence")


def _config(**extra):
    from transformers import Wav2Vec2Config

    return Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
        conv_dim=(16, 16, 16), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, **extra,
    )


def _feature_extractor():
    from transformers import Wav2Vec2FeatureExtractor

    return Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                                    do_normalize=True, return_attention_mask=True)


def write_tiny_asr(folder: Path) -> Path:
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2ForCTC, Wav2Vec2Processor

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<pad>": 0, "<unk>": 1, "|": 2, **{c: i + 3 for i, c in enumerate(CHARS)}}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), bos_token=None, eos_token=None)
    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(_config(vocab_size=len(vocab), pad_token_id=0)).eval()
    Wav2Vec2Processor(feature_extractor=_feature_extractor(), tokenizer=tokenizer).save_pretrained(folder)
    model.save_pretrained(folder)
    return folder


def write_tiny_audio_classifier(folder: Path) -> Path:
    from transformers import Wav2Vec2ForSequenceClassification

    folder.mkdir(parents=True, exist_ok=True)
    id2label = dict(enumerate(LABELS))
    torch.manual_seed(1)
    model = Wav2Vec2ForSequenceClassification(
        _config(num_labels=len(LABELS), id2label=id2label, label2id={v: k for k, v in id2label.items()})
    ).eval()
    model.save_pretrained(folder)
    _feature_extractor().save_pretrained(folder)
    return folder
