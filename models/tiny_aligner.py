"""Build a tiny, randomly initialised Qwen3-ForcedAligner checkpoint for tests: the real transformers classes
(Qwen3ASRConfig, Qwen3ASRForTokenClassification, Qwen3ASRProcessor with its feature extractor), the tiny
Qwen3-Omni tokenizer plus <timestamp>, and a chat template that renders the aligner's raw input (the audio, then
each word followed by two <timestamp> tokens). Its random weights place words anywhere: models.timing keeps them
in speech, in order and inside the audio.

    python -m models.tiny_aligner OUT_DIR
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from models.tiny import build_tokenizer

TIME_BINS = 5000  # 80 ms classes: 400 s, the real aligner's hard ceiling
TEMPLATE = (
    "{%- for message in messages -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'audio' -%}{{- '<|audio_start|><|audio_pad|><|audio_end|>' -}}"
    "{%- elif item['type'] == 'text' -%}{{- item['text'] + '<timestamp><timestamp>' -}}"
    "{%- endif -%}{%- endfor -%}{%- endfor -%}"
)


def build_aligner(out_dir: Path, seed: int = 0) -> Path:
    import torch
    from tokenizers import AddedToken, Tokenizer
    from transformers import AutoTokenizer, Qwen3ASRConfig, Qwen3ASRForTokenClassification, Qwen3ASRProcessor
    from transformers.models.qwen3_asr.feature_extraction_qwen3_asr import Qwen3ASRFeatureExtractor

    out_dir.mkdir(parents=True, exist_ok=True)
    build_tokenizer(out_dir)
    raw = Tokenizer.from_file(str(out_dir / "tokenizer.json"))
    raw.add_special_tokens([AddedToken("<timestamp>", special=True, normalized=False)])
    raw.save(str(out_dir / "tokenizer.json"))
    config_path = out_dir / "tokenizer_config.json"
    tokenizer_config = json.loads(config_path.read_text())
    tokenizer_config["extra_special_tokens"] = {
        "audio_token": "<|audio_pad|>", "audio_bos_token": "<|audio_start|>", "audio_eos_token": "<|audio_end|>",
    }  # fmt: skip
    config_path.write_text(json.dumps(tokenizer_config, indent=2))
    tokenizer = AutoTokenizer.from_pretrained(str(out_dir))
    processor = Qwen3ASRProcessor(feature_extractor=Qwen3ASRFeatureExtractor(), tokenizer=tokenizer,
                                  chat_template=TEMPLATE)  # fmt: skip
    processor.save_pretrained(str(out_dir))
    config = Qwen3ASRConfig(
        audio_config={"num_mel_bins": 128, "encoder_layers": 2, "encoder_attention_heads": 2, "encoder_ffn_dim": 64,
                      "d_model": 32, "output_dim": 32, "downsample_hidden_size": 32},
        text_config={"vocab_size": raw.get_vocab_size() + 4, "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
                     "max_position_embeddings": 8192},
        audio_token_id=tokenizer.convert_tokens_to_ids("<|audio_pad|>"),
        timestamp_token_id=tokenizer.convert_tokens_to_ids("<timestamp>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        num_labels=TIME_BINS,
    )  # fmt: skip
    torch.manual_seed(seed)
    Qwen3ASRForTokenClassification(config).save_pretrained(str(out_dir))
    return out_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args()
    print(f"tiny forced aligner (random weights) written to {build_aligner(args.out_dir)}")


if __name__ == "__main__":
    main()
