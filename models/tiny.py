"""Build a tiny, randomly initialised Qwen3-Omni checkpoint for tests and the quick start.

The checkpoint uses the real transformers config, model and processor classes, and keeps the real
special-token ids, so it runs exactly the load/generate path of the 30B checkpoints. Its weights are
random: whatever it "captions" is noise.

    python -m models.tiny OUT_DIR [--variant instruct|thinking|captioner]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from models.variants import Variant

# Special tokens from id 151643 on, in the real checkpoint's order.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>",
    "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
    "<tool_response>", "</tool_response>", "<think>", "</think>", "<|audio_start|>", "<|audio_end|>",
    "<tts_pad>", "<tts_text_bos>", "<tts_text_eod>", "<tts_text_bos_single>", "<|audio_pad|>",
)  # fmt: skip
FIRST_SPECIAL_ID = 151643
# Added tokens that the real tokenizer keeps in decoded text (not "special").
NON_SPECIAL = {"<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"}
FIXED_IDS = {"user": 872, "system": 8948, "assistant": 77091}
QWEN2_PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
THINKER_VOCAB = 152064

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'audio' -%}{{- '<|audio_start|><|audio_pad|><|audio_end|>' -}}"
    "{%- elif item['type'] == 'image' -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif item['type'] == 'video' -%}{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}"
    "{%- elif item['type'] == 'text' -%}{{- item['text'] -}}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking -%}{{- '<think>\\n' -}}{%- endif -%}"
    "{%- endif -%}"
)

_CORPUS = [
    "user", "system", "assistant", "Transcribe the audio into text.", "Describe the video in detail.",
    "What is in this image? Read all the text.", "Translate the speech into English.",
    "The quick brown fox jumps over the lazy dog. 0123456789 Hello world, music, speech, sound.",
    "请将这段中文语音转换为纯文本。", "Analyze the music: genre, tempo, key, instruments and mood.",
]  # fmt: skip


_SYLLABLES = [c + v for c in "bdfgklmnprstvzhj" for v in "aeiu"]


def _pseudo_word(index: int) -> str:
    """A unique, merge-unreachable vocab entry that decodes to " word" (random output reads as words)."""
    parts = []
    for _ in range(3):
        index, digit = divmod(index, len(_SYLLABLES))
        parts.append(_SYLLABLES[digit])
    return "\u0120" + "".join(parts) + "x"


def build_tokenizer(out_dir: Path) -> None:
    """Train a small byte-level BPE and lay it out on the real Qwen2 ids."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    pre = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    scratch = Tokenizer(models.BPE())
    scratch.pre_tokenizer = pre
    trainer = trainers.BpeTrainer(
        vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    scratch.train_from_iterator(_CORPUS * 50, trainer=trainer)
    learned = json.loads(scratch.to_str())["model"]
    for word in FIXED_IDS:
        if word not in learned["vocab"]:
            raise RuntimeError(f"tiny tokenizer did not learn {word!r} as one token")

    ordered = [tok for tok, _ in sorted(learned["vocab"].items(), key=lambda kv: kv[1]) if tok not in FIXED_IDS]
    vocab: dict[str, int] = dict(FIXED_IDS)
    next_id = 0
    for tok in ordered:
        while next_id in vocab.values() or next_id in FIXED_IDS.values():
            next_id += 1
        vocab[tok] = next_id
        next_id += 1
    used = set(vocab.values())
    for filler_id in range(FIRST_SPECIAL_ID):  # unreachable fillers keep the real id layout
        if filler_id not in used:
            vocab[_pseudo_word(filler_id)] = filler_id
    if len(vocab) != FIRST_SPECIAL_ID:
        raise RuntimeError("tiny tokenizer vocab collided with a filler entry")
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in learned["merges"]]

    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, byte_fallback=False))
    tokenizer.pre_tokenizer = pre
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(
        [AddedToken(tok, special=tok not in NON_SPECIAL, normalized=False) for tok in SPECIAL_TOKENS]
    )
    for offset, tok in enumerate(SPECIAL_TOKENS):
        if tokenizer.token_to_id(tok) != FIRST_SPECIAL_ID + offset:
            raise RuntimeError(f"special token {tok} landed on the wrong id")
    tokenizer.save(str(out_dir / "tokenizer.json"))
    config = {
        "tokenizer_class": "Qwen2Tokenizer",
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "model_max_length": 32768,
        "extra_special_tokens": {
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "audio_token": "<|audio_pad|>",
            "vision_bos_token": "<|vision_start|>",
            "vision_eos_token": "<|vision_end|>",
            "audio_bos_token": "<|audio_start|>",
            "audio_eos_token": "<|audio_end|>",
        },
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def _mrope(section: list[int]) -> dict[str, Any]:
    return {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": section, "interleaved": True,
            "mrope_interleaved": True}  # fmt: skip


def build_config(variant: Variant) -> Any:
    """The real config classes, shrunk; undeclared fields the model reads are set explicitly."""
    from transformers import Qwen3OmniMoeConfig

    hidden = 64
    thinker = {
        "text_config": {
            "vocab_size": THINKER_VOCAB, "hidden_size": hidden, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "moe_intermediate_size": 32, "num_experts": 4, "num_experts_per_tok": 2,
            "max_position_embeddings": 32768, "rope_parameters": _mrope([2, 3, 3]),
        },
        "vision_config": {
            "depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "patch_size": 16,
            "spatial_merge_size": 2, "temporal_patch_size": 2, "out_hidden_size": hidden,
            "num_position_embeddings": 2304, "deepstack_visual_indexes": [1],
        },
        "audio_config": {
            "num_mel_bins": 128, "encoder_layers": 2, "encoder_attention_heads": 2, "encoder_ffn_dim": 64,
            "d_model": 32, "output_dim": hidden, "downsample_hidden_size": 32, "max_source_positions": 1500,
        },
        "position_id_per_seconds": 13, "audio_token_id": 151675, "image_token_id": 151655,
        "video_token_id": 151656, "audio_start_token_id": 151669, "user_token_id": 872,
    }  # fmt: skip
    talker = {
        "text_config": {
            "vocab_size": 3072, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "num_key_value_heads": 1, "moe_intermediate_size": 32,
            "num_experts": 4, "num_experts_per_tok": 2, "rope_parameters": _mrope([2, 3, 3]),
        },
        "code_predictor_config": {
            "vocab_size": 2048, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
            "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16, "num_code_groups": 4,
        },
        "num_code_groups": 4, "thinker_hidden_size": hidden, "accept_hidden_layer": 1,
        "codec_pad_id": 2148, "codec_bos_id": 2149, "codec_eos_token_id": 2150, "codec_nothink_id": 2155,
        "codec_think_bos_id": 2156, "codec_think_eos_id": 2157,
        "speaker_id": {"chelsie": 2301, "ethan": 2302, "aiden": 2303},
        "audio_token_id": 151675, "image_token_id": 151655, "video_token_id": 151656,
        "vision_start_token_id": 151652, "position_id_per_seconds": 13, "audio_start_token_id": 151669,
    }  # fmt: skip
    code2wav = {
        "codebook_size": 2048, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 2, "num_quantizers": 4,
        "upsample_rates": [8, 5, 4, 3], "upsampling_ratios": [2, 2], "decoder_dim": 32,
    }  # fmt: skip
    config = Qwen3OmniMoeConfig(
        thinker_config=thinker,
        talker_config=talker,
        code2wav_config=code2wav,
        enable_audio_output=variant is Variant.INSTRUCT,
    )
    config.thinker_config.vision_start_token_id = 151652
    config.talker_config.spatial_merge_size = 2
    config.talker_config.text_config.shared_expert_intermediate_size = 32
    config.omnimedia_variant = variant.value
    return config


def build_processor(out_dir: Path) -> None:
    from transformers import (
        AutoTokenizer,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
        Qwen3OmniMoeProcessor,
        WhisperFeatureExtractor,
    )

    tokenizer = AutoTokenizer.from_pretrained(str(out_dir))
    pixels = {"min_pixels": 32 * 32, "max_pixels": 64 * 64 * 4}
    vision = {"patch_size": 16, "merge_size": 2, "temporal_patch_size": 2,
              "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}  # fmt: skip
    processor = Qwen3OmniMoeProcessor(
        image_processor=Qwen2VLImageProcessor(**vision, **pixels),
        video_processor=Qwen2VLVideoProcessor(**vision, **pixels),
        feature_extractor=WhisperFeatureExtractor(feature_size=128, sampling_rate=16000, hop_length=160),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(str(out_dir))


def build(out_dir: Path, variant: Variant = Variant.INSTRUCT, seed: int = 0) -> Path:
    """Write a complete tiny checkpoint (config, weights, processor, tokenizer) to out_dir."""
    import torch
    from transformers import Qwen3OmniMoeForConditionalGeneration

    out_dir.mkdir(parents=True, exist_ok=True)
    build_tokenizer(out_dir)
    build_processor(out_dir)
    torch.manual_seed(seed)
    model = Qwen3OmniMoeForConditionalGeneration(build_config(variant))
    model.save_pretrained(str(out_dir))
    return out_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--variant", choices=[v.value for v in Variant], default=Variant.INSTRUCT.value)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    path = build(args.out_dir, Variant(args.variant), args.seed)
    print(f"tiny {args.variant} checkpoint (random weights) written to {path}")


if __name__ == "__main__":
    main()
