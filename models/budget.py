"""How much media fits the model's context: tokens per second of audio and of video at the frame size we decode
to, and the longest segment whose prompt stays within max_model_len with room for the answer. The same numbers
hold for both backends (they feed the model the same frames: models.prompting.video_processor_kwargs).

Audio: 16 kHz, 100 mel frames a second, 13 tokens per 100 frames after the audio tower's three stride-2 convolutions
(Qwen3-Omni's feature length rule). Video: 2 fps, frames paired in time (temporal patch 2), 16-pixel patches merged
2x2: one second is (H/16 x W/16) / 4 tokens."""

from __future__ import annotations

import math

from models.decoding import VIDEO_FPS
from models.media import MediaInfo, MediaKind, MediaLimits, frame_size

MEL_FRAMES_PER_S = 100
PATCH, MERGE, TEMPORAL = 16, 2, 2
PROMPT_TOKENS = 256  # the chat template, system prompt and instruction around the media
MIN_SEGMENT_S = 5.0


def audio_tokens(seconds: float) -> int:
    """Audio tokens for `seconds` of audio (transformers' Qwen3-Omni _get_feat_extract_output_lengths)."""
    frames = int(seconds * MEL_FRAMES_PER_S)
    leave = frames % 100
    feat = (leave - 1) // 2 + 1
    return ((feat - 1) // 2 + 1 - 1) // 2 + 1 + (frames // 100) * 13


def video_tokens_per_s(width: int, height: int, fps: float = VIDEO_FPS) -> float:
    return fps / TEMPORAL * (height // PATCH) * (width // PATCH) / (MERGE * MERGE)


def tokens_per_s(info: MediaInfo, limits: MediaLimits) -> float:
    """Prompt tokens one second of this media costs (its audio track included for a video that has one)."""
    audio = audio_tokens(100.0) / 100.0 if info.has_audio else 0.0
    if info.kind is MediaKind.VIDEO:
        return video_tokens_per_s(*frame_size(info.width, info.height, limits.max_frame_pixels)) + audio
    return audio


def prompt_tokens(info: MediaInfo, limits: MediaLimits, seconds: float) -> float:
    """About how many prompt tokens a segment of `seconds` of this media takes, the text around it included."""
    return tokens_per_s(info, limits) * seconds + PROMPT_TOKENS


def encoder_budget(max_model_len: int, max_num_batched_tokens: int = 0) -> int:
    """The most embeddings one media item may have: vLLM refuses an item larger than its encoder cache, which is at
    least max_num_batched_tokens (0: the engine is given max_model_len, as vLLM-Omni's thinker stage does)."""
    return max_num_batched_tokens or max_model_len


def segment_budget_s(
    info: MediaInfo, limits: MediaLimits, max_model_len: int, max_new_tokens: int, max_item_tokens: int = 0
) -> float | None:
    """The longest segment whose prompt (prompt_tokens) fits the context with `max_new_tokens` left to answer in,
    and whose video (one media item) has no more embeddings than `max_item_tokens` (encoder_budget; 0: no such
    cap); None for an image (one segment, bounded by its pixel cap). One function for both backends."""
    if info.kind is MediaKind.IMAGE:
        return None
    per_s = tokens_per_s(info, limits)
    room = max_model_len - max_new_tokens - PROMPT_TOKENS
    if per_s <= 0:
        return None
    fits = room / per_s
    if info.kind is MediaKind.VIDEO and max_item_tokens:
        fits = min(
            fits, max_item_tokens / video_tokens_per_s(*frame_size(info.width, info.height, limits.max_frame_pixels))
        )
    return max(MIN_SEGMENT_S, float(math.floor(fits)))
