"""The task catalogue: every task of the Qwen3-Omni model card, its parameters, accepted media and prompt."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models.errors import TaskInputError
from models.media import MediaKind


class TaskName(str, enum.Enum):
    TRANSCRIBE = "transcribe"
    TRANSLATE = "translate"
    CAPTION_AUDIO = "caption_audio"
    DESCRIBE_VIDEO = "describe_video"
    OCR = "ocr"
    ASK = "ask"
    ANALYZE_MUSIC = "analyze_music"
    CUSTOM = "custom"
    SUBTITLES = "subtitles"


class Voice(str, enum.Enum):
    """Talker voices of the Instruct checkpoint."""

    ETHAN = "Ethan"
    CHELSIE = "Chelsie"
    AIDEN = "Aiden"

    @classmethod
    def parse(cls, name: str) -> Voice:
        for voice in cls:
            if voice.value.lower() == name.strip().lower():
                return voice
        raise TaskInputError(f"unknown voice {name!r}; choose one of Ethan, Chelsie, Aiden")


ShortText = Annotated[str, Field(min_length=1, max_length=4000)]
Language = Annotated[str, Field(min_length=2, max_length=40, pattern=r"^[A-Za-z][A-Za-z \-()]*$")]


class TaskParams(BaseModel):
    """Parameters shared by every task. Greedy decoding by default (the model card's evaluation setting)."""

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(1024, ge=1, le=8192)
    do_sample: bool = False
    temperature: float = Field(0.7, gt=0.0, le=2.0)
    top_p: float = Field(0.8, gt=0.0, le=1.0)
    top_k: int = Field(20, ge=1, le=1000)
    repetition_penalty: float = Field(1.0, ge=1.0, le=2.0)
    voice: Voice | None = Field(None, description="also return speech (24 kHz WAV) in this voice (any letter case)")
    segment_seconds: float | None = Field(
        None, ge=5.0, le=900.0, description="Split media longer than this into timed segments"
    )

    @field_validator("voice", mode="before")
    @classmethod
    def _known_voice(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        try:
            return Voice.parse(value)
        except TaskInputError as exc:
            raise ValueError(exc.reason) from exc

    def sampling_key(self) -> tuple[Any, ...]:
        """Requests with equal keys can share one generate() call (max_new_tokens may differ)."""
        if not self.do_sample:
            return (False, self.repetition_penalty)
        return (True, self.temperature, self.top_p, self.top_k, self.repetition_penalty)


SpeakerName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f<>{}\\]+$")]
SpeakerCount = Annotated[int, Field(ge=1, le=32)]
UploadRef = Annotated[str, Field(pattern=r"^(upload:)?[0-9a-f]{32}$")]


class TranscribeParams(TaskParams):
    language: Language | None = Field(None, description="Spoken language, e.g. 'en' or 'Chinese'")
    context: ShortText | None = Field(None, description="Names and terms the speech may contain (spelling hints)")
    diarize: bool = Field(False, description="Find who spoke when: a speaker on every word, segment and cue")
    num_speakers: SpeakerCount | None = Field(None, description="Exactly this many speakers (implies diarize)")
    min_speakers: SpeakerCount | None = Field(None, description="At least this many speakers (implies diarize)")
    max_speakers: SpeakerCount | None = Field(None, description="At most this many speakers (implies diarize)")
    speaker_names: list[SpeakerName] = Field(
        default_factory=list, max_length=16, description="Names for speaker_references, one each (implies diarize)"
    )
    speaker_references: list[UploadRef] = Field(
        default_factory=list, max_length=16, description="Upload ids of short clips of each named speaker's voice"
    )
    subtitle_languages: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="Also make a translated subtitle track in each of these languages, on the same cue times",
    )

    @field_validator("subtitle_languages")
    @classmethod
    def _languages(cls, value: list[str]) -> list[str]:
        return _track_languages(value)

    @model_validator(mode="after")
    def _speakers(self) -> TranscribeParams:
        if len(self.speaker_names) != len(self.speaker_references):
            raise ValueError("give one speaker_references clip for each of speaker_names")
        if self.min_speakers and self.max_speakers and self.min_speakers > self.max_speakers:
            raise ValueError("min_speakers is more than max_speakers")
        if self.num_speakers or self.min_speakers or self.max_speakers or self.speaker_names:
            self.diarize = True
        return self


def _track_languages(values: list[str]) -> list[str]:
    """Subtitle track languages as codes of the model's text languages, each once; refused otherwise."""
    from models.translation import language_code

    codes: list[str] = []
    for value in values:
        code = language_code(value)
        if code is None:
            raise ValueError(
                f"{value!r} is not a language subtitles can be translated into (ISO 639-1 codes: en, de, ...)"
            )
        if code not in codes:
            codes.append(code)
    return codes


class TranslateParams(TaskParams):
    target_language: Language
    source_language: Language | None = None


class CaptionAudioParams(TaskParams):
    pass


class DescribeVideoParams(TaskParams):
    use_audio: bool = Field(True, description="Let the model hear the video's own audio track")
    prompt: ShortText | None = None
    audio_description: bool = Field(
        False, description="An audio-description track: what is on screen, described in the pauses of speech"
    )
    description_min_gap_s: float = Field(1.5, ge=0.5, le=30.0, description="The shortest pause a description fills")
    description_mix: bool = Field(
        False, description="Also a copy of the video with the narration (voice) mixed in as one more audio stream"
    )

    @model_validator(mode="after")
    def _description(self) -> DescribeVideoParams:
        if self.description_mix and not (self.audio_description and self.voice):
            raise ValueError("description_mix needs audio_description and a voice to narrate it")
        return self


class SubtitlesParams(TaskParams):
    """A subtitle track translated from a finished transcript (input `job:<id>`), cue by cue."""

    target_language: str = Field(min_length=2, max_length=40)
    source_language: Language | None = None
    text: str | None = Field(None, max_length=20_000, description="(set per request by the service)")

    @field_validator("target_language")
    @classmethod
    def _target(cls, value: str) -> str:
        return _track_languages([value])[0]


class OcrParams(TaskParams):
    pass


class AskParams(TaskParams):
    question: ShortText


class AnalyzeMusicParams(TaskParams):
    pass


class CustomParams(TaskParams):
    prompt: ShortText
    system_prompt: ShortText | None = None


_ZH = {"zh", "chinese", "mandarin", "zh-cn", "cn"}
_LANG_NAMES = {
    "en": "English",
    "zh": "Chinese",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "ru": "Russian",
    "pt": "Portuguese",
    "ar": "Arabic",
    "nl": "Dutch",
}


def language_name(code: str) -> str:
    return _LANG_NAMES.get(code.lower(), code)


@dataclass(frozen=True)
class Prompt:
    """The text part of a conversation; media are placed before the text in the user turn."""

    user_text: str | None
    system: str | None = None
    use_audio_in_video: bool = False


@dataclass(frozen=True)
class TaskSpec:
    name: TaskName
    params: type[TaskParams]
    accepts: frozenset[MediaKind]
    needs_audio: bool  # video inputs must carry an audio track
    description: str
    spoken: bool = False  # its text is what is said (transcribe, translate): cues follow the speech

    @property
    def word_timed(self) -> bool:
        """Whether its words are the spoken words, each with a time (a translation's are not)."""
        return self.name is TaskName.TRANSCRIBE

    def prompt(self, params: TaskParams) -> Prompt:
        return _PROMPTS[self.name](params)


def _transcribe(p: TaskParams) -> Prompt:
    assert isinstance(p, TranscribeParams)
    hint = f" Names and terms it may contain: {p.context}" if p.context else ""
    if p.language and p.language.lower() in _ZH:
        return Prompt("请将这段中文语音转换为纯文本。" + hint)
    if p.language:
        return Prompt(f"Transcribe the {language_name(p.language)} audio into text.{hint}")
    return Prompt(f"Transcribe the audio into text.{hint}")


def _translate(p: TaskParams) -> Prompt:
    assert isinstance(p, TranslateParams)
    source = f"{language_name(p.source_language)} " if p.source_language else ""
    return Prompt(
        f"Listen to the provided {source}speech and produce a translation in {language_name(p.target_language)} text."
    )


def _describe_video(p: TaskParams) -> Prompt:
    assert isinstance(p, DescribeVideoParams)
    text = p.prompt or "Describe the video in detail: what happens, who is there, and what is said or heard."
    return Prompt(text, use_audio_in_video=p.use_audio)


def _ask(p: TaskParams) -> Prompt:
    assert isinstance(p, AskParams)
    return Prompt(p.question)


def _subtitles(p: TaskParams) -> Prompt:
    assert isinstance(p, SubtitlesParams)
    return Prompt(p.text or "", system="You are a professional subtitle translator.")


def _custom(p: TaskParams) -> Prompt:
    assert isinstance(p, CustomParams)
    return Prompt(p.prompt, system=p.system_prompt, use_audio_in_video=True)


_PROMPTS = {
    TaskName.TRANSCRIBE: _transcribe,
    TaskName.TRANSLATE: _translate,
    TaskName.CAPTION_AUDIO: lambda p: Prompt(
        "Give a detailed description of this audio: speech, music and sounds, and when they occur."
    ),
    TaskName.DESCRIBE_VIDEO: _describe_video,
    TaskName.OCR: lambda p: Prompt("Extract all the text in the image, keeping its reading order."),
    TaskName.ASK: _ask,
    TaskName.ANALYZE_MUSIC: lambda p: Prompt(
        "Analyze this music: genre, mood, tempo, key, instruments, vocals and structure."
    ),
    TaskName.CUSTOM: _custom,
    TaskName.SUBTITLES: _subtitles,
}

_AUDIO_LIKE = frozenset({MediaKind.AUDIO, MediaKind.VIDEO})
_ANY = frozenset({MediaKind.AUDIO, MediaKind.VIDEO, MediaKind.IMAGE})

CATALOGUE: dict[TaskName, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(TaskName.TRANSCRIBE, TranscribeParams, _AUDIO_LIKE, True, "Speech recognition (ASR)", spoken=True),
        TaskSpec(TaskName.TRANSLATE, TranslateParams, _AUDIO_LIKE, True, "Speech-to-text translation", spoken=True),
        TaskSpec(TaskName.CAPTION_AUDIO, CaptionAudioParams, _AUDIO_LIKE, True, "Describe speech, music, sound"),
        TaskSpec(
            TaskName.DESCRIBE_VIDEO,
            DescribeVideoParams,
            frozenset({MediaKind.VIDEO}),
            False,
            "Describe a video, with its audio by default",
        ),
        TaskSpec(TaskName.OCR, OcrParams, frozenset({MediaKind.IMAGE}), False, "Read the text in an image"),
        TaskSpec(TaskName.ASK, AskParams, _ANY, False, "Answer a question about image, audio or video"),
        TaskSpec(TaskName.ANALYZE_MUSIC, AnalyzeMusicParams, _AUDIO_LIKE, True, "Music analysis"),
        TaskSpec(
            TaskName.CUSTOM, CustomParams, _ANY | {MediaKind.TEXT}, False, "Your own prompt and optional system prompt"
        ),
        TaskSpec(
            TaskName.SUBTITLES,
            SubtitlesParams,
            frozenset({MediaKind.TEXT}),
            False,
            "A finished transcript's subtitles in another language, on the same cue times (input: job:<id>)",
        ),
    )
}


def get_task(name: str | TaskName) -> TaskSpec:
    try:
        return CATALOGUE[TaskName(name)]
    except ValueError as exc:
        known = ", ".join(t.value for t in TaskName)
        raise TaskInputError(f"unknown task {name!r}; known tasks: {known}") from exc


def parse_params(task: str | TaskName, params: dict[str, Any] | None) -> TaskParams:
    """Validate raw parameters for a task; raise TaskInputError with every problem listed."""
    spec = get_task(task)
    try:
        return spec.params.model_validate(params or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in err['loc']) or 'params'}: {err['msg']}" for err in exc.errors()
        )
        raise TaskInputError(f"invalid params for {spec.name.value}: {problems}") from exc


def check_media(spec: TaskSpec, kind: MediaKind, has_audio: bool) -> None:
    """Fail fast when a task is given media it cannot use."""
    if kind not in spec.accepts:
        accepted = ", ".join(sorted(k.value for k in spec.accepts))
        raise TaskInputError(f"task {spec.name.value} does not accept {kind.value} input (accepts: {accepted})")
    if spec.needs_audio and kind is MediaKind.VIDEO and not has_audio:
        raise TaskInputError(f"task {spec.name.value} needs audio, and this video has no audio track")
