"""Translated subtitle tracks: a finished transcript's cues translated as text by the thinker, in batches with their
neighbours as context (a sentence split across cues translates whole), every cue keeping its start and end, its
lines re-shaped for the target script (CJK by characters)."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

# Languages a track may be asked in, by ISO 639-1 code: a subset of Qwen3's 119 text languages, named as the prompt
# names them. A code outside this table is refused at submit.
TEXT_LANGUAGES = {
    "af": "Afrikaans",
    "am": "Amharic",
    "ar": "Arabic",
    "as": "Assamese",
    "az": "Azerbaijani",
    "be": "Belarusian",
    "bg": "Bulgarian",
    "bn": "Bengali",
    "bs": "Bosnian",
    "ca": "Catalan",
    "cs": "Czech",
    "cy": "Welsh",
    "da": "Danish",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "eo": "Esperanto",
    "es": "Spanish",
    "et": "Estonian",
    "eu": "Basque",
    "fa": "Persian",
    "fi": "Finnish",
    "fo": "Faroese",
    "fr": "French",
    "ga": "Irish",
    "gl": "Galician",
    "gu": "Gujarati",
    "he": "Hebrew",
    "hi": "Hindi",
    "hr": "Croatian",
    "ht": "Haitian Creole",
    "hu": "Hungarian",
    "hy": "Armenian",
    "id": "Indonesian",
    "is": "Icelandic",
    "it": "Italian",
    "ja": "Japanese",
    "jv": "Javanese",
    "ka": "Georgian",
    "kk": "Kazakh",
    "km": "Khmer",
    "kn": "Kannada",
    "ko": "Korean",
    "ku": "Kurdish",
    "ky": "Kyrgyz",
    "lb": "Luxembourgish",
    "lo": "Lao",
    "lt": "Lithuanian",
    "lv": "Latvian",
    "mg": "Malagasy",
    "mk": "Macedonian",
    "ml": "Malayalam",
    "mn": "Mongolian",
    "mr": "Marathi",
    "ms": "Malay",
    "mt": "Maltese",
    "my": "Burmese",
    "nb": "Norwegian Bokmål",
    "ne": "Nepali",
    "nl": "Dutch",
    "nn": "Norwegian Nynorsk",
    "oc": "Occitan",
    "or": "Odia",
    "pa": "Punjabi",
    "pl": "Polish",
    "ps": "Pashto",
    "pt": "Portuguese",
    "ro": "Romanian",
    "ru": "Russian",
    "sd": "Sindhi",
    "si": "Sinhala",
    "sk": "Slovak",
    "sl": "Slovenian",
    "so": "Somali",
    "sq": "Albanian",
    "sr": "Serbian",
    "sv": "Swedish",
    "sw": "Swahili",
    "ta": "Tamil",
    "te": "Telugu",
    "tg": "Tajik",
    "th": "Thai",
    "tl": "Tagalog",
    "tr": "Turkish",
    "tt": "Tatar",
    "uk": "Ukrainian",
    "ur": "Urdu",
    "uz": "Uzbek",
    "vi": "Vietnamese",
    "yi": "Yiddish",
    "yo": "Yoruba",
    "zh": "Chinese",
    "zu": "Zulu",
}
CJK = frozenset({"zh", "ja", "ko"})
CJK_LINE_CHARS = 16  # per line, as broadcast subtitle guides set for Chinese, Japanese and Korean
LINE_CHARS = 42
BATCH_CUES = 12  # cues translated in one request
CONTEXT_CUES = 2  # neighbours on each side given for meaning only
_NUMBERED = re.compile(r"^\s*\[?(\d{1,4})[\].):]\s*(.*)$")


def language_code(language: str) -> str | None:
    """The table's code for a code or an English name (any case), or None."""
    value = language.strip().lower()
    if value in TEXT_LANGUAGES:
        return value
    return next((code for code, name in TEXT_LANGUAGES.items() if name.lower() == value), None)


@dataclass(frozen=True)
class CueBatch:
    """Cues [start, end) of a track to translate in one request, with neighbours for context."""

    start: int
    end: int
    before: list[str]
    texts: list[str]
    after: list[str]


def batches(texts: list[str], size: int = BATCH_CUES, context: int = CONTEXT_CUES) -> list[CueBatch]:
    return [
        CueBatch(
            i,
            min(i + size, len(texts)),
            texts[max(0, i - context) : i],
            texts[i : i + size],
            texts[i + size : i + size + context],
        )
        for i in range(0, len(texts), size)
    ]


def batch_prompt(batch: CueBatch, source: str | None, target: str) -> str:
    """The request for one batch: numbered lines to translate, the neighbours marked as context only."""
    origin = f"from {TEXT_LANGUAGES.get(source or '', source)} " if source else ""
    parts = [
        f"Translate these numbered subtitle lines {origin}into {TEXT_LANGUAGES[target]}. Answer with exactly one "
        "numbered line for each numbered line, in the same order, and nothing else. A sentence may run on from one "
        "line to the next: translate it whole, keeping each part on its own line.",
    ]
    if batch.before:
        parts.append("Context before (do not translate): " + " ".join(batch.before))
    parts += [f"{n}. {text}" for n, text in enumerate(batch.texts, 1)]
    if batch.after:
        parts.append("Context after (do not translate): " + " ".join(batch.after))
    return "\n".join(parts)


def parse_lines(answer: str, count: int) -> list[str]:
    """One translated line per cue from a numbered answer; where the numbering is missing or broken, the answer's
    words shared out over the cues in order (never a cue left without text, never a cue moved)."""
    found: dict[int, str] = {}
    for line in answer.splitlines():
        match = _NUMBERED.match(line)
        if match and 1 <= int(match.group(1)) <= count and match.group(2).strip():
            found.setdefault(int(match.group(1)), match.group(2).strip())
    if len(found) == count:
        return [found[n] for n in range(1, count + 1)]
    words = answer.split() or ["…"]
    share = max(1, len(words) // count)
    return [" ".join(words[i * share : (i + 1) * share if i < count - 1 else None]) or "…" for i in range(count)]


def shape_lines(text: str, language: str) -> str:
    """Lines for the target script: CJK broken by characters (16 a line), others at spaces (42 a line)."""
    text = " ".join(text.split())
    if language in CJK:
        return "\n".join(text[i : i + CJK_LINE_CHARS] for i in range(0, len(text), CJK_LINE_CHARS))
    return "\n".join(textwrap.wrap(text, LINE_CHARS, break_long_words=True, break_on_hyphens=False)) or text
