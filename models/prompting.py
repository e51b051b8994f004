"""What both backends share before any compute: request validation and the chat conversation of a request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.engine import GenerationRequest
from models.errors import CapabilityError
from models.media import FRAME_ALIGN, VIDEO_FPS, MediaKind, MediaLimits
from models.tasks import Voice, check_media
from models.variants import Variant


@dataclass(frozen=True)
class Conversation:
    """Chat messages for the processor's template, and how the media goes with them."""

    messages: list[dict[str, Any]]
    use_audio_in_video: bool

    @property
    def media_kinds(self) -> list[str]:
        """The media placeholders of the user turn, in order ("audio", "image", "video")."""
        return [c["type"] for c in self.messages[-1]["content"] if c["type"] != "text"]


def video_processor_kwargs(limits: MediaLimits) -> dict[str, Any]:
    """How the processor takes our frames, the same on both backends: as decoded (2 fps, already sampled), and
    kept at the size we decoded them to (its default pixel bounds would scale them: the vLLM path used to)."""
    return {
        "do_sample_frames": False,
        "cap_pixels_per_frame": True,  # transformers >= 5.21 (else ignored): frames arrive at the planner's size anyway
        "fps": VIDEO_FPS,
        "size": {"shortest_edge": FRAME_ALIGN * FRAME_ALIGN, "longest_edge": limits.max_frame_pixels},
    }


def validate_request(request: GenerationRequest, variant: Variant, talker_loaded: bool) -> None:
    """Every check that needs no compute: variant capability, task modality, voice."""
    media = request.media
    if request.wants_speech:
        if not variant.can_speak:
            raise CapabilityError(f"the {variant.value} checkpoint cannot produce speech")
        if not talker_loaded:
            raise CapabilityError("this worker did not load the talker; speech jobs go to the talker queue")
        Voice.parse(request.params.voice or "")
    if variant is Variant.CAPTIONER:
        if media.kind is not MediaKind.AUDIO:
            raise CapabilityError(f"the captioner checkpoint takes audio only, not {media.kind.value}")
        if request.task.name.value != "caption_audio":
            raise CapabilityError("the captioner checkpoint only runs the caption_audio task")
    check_media(request.task, media.kind, media.audio is not None)


def conversation(request: GenerationRequest, variant: Variant) -> Conversation:
    """The model card's message layout for a task: system prompt, one media item, then the instruction."""
    prompt = request.task.prompt(request.params)
    media = request.media
    use_audio_in_video = media.kind is MediaKind.VIDEO and media.audio is not None and prompt.use_audio_in_video
    content: list[dict[str, Any]] = [] if media.kind is MediaKind.TEXT else [{"type": media.kind.value}]
    if media.kind is MediaKind.AUDIO or (media.kind is MediaKind.VIDEO and request.task.needs_audio):
        content = [{"type": "audio"}]
    if variant is not Variant.CAPTIONER and prompt.user_text:
        content.append({"type": "text", "text": prompt.user_text})
    messages: list[dict[str, Any]] = []
    if prompt.system:
        messages.append({"role": "system", "content": [{"type": "text", "text": prompt.system}]})
    messages.append({"role": "user", "content": content})
    return Conversation(messages, use_audio_in_video)
