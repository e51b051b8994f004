#!/usr/bin/env bash
# The main job on the embedded default (SQLite, local folder, in-process worker, no servers):
# build the tiny random Qwen3-Omni checkpoint, make sample media, caption it.
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"
cd "$ROOT"
export OMNIMEDIA_DATA_DIR="${OMNIMEDIA_DATA_DIR:-$ROOT/.omnimedia}"
TINY="$OMNIMEDIA_DATA_DIR/tiny-qwen3-omni"
SAMPLES="$OMNIMEDIA_DATA_DIR/samples"
[ -f "$TINY/model.safetensors" ] || python -m models.tiny "$TINY"
python -m bench.samples "$SAMPLES"
export OMNIMEDIA_MODEL="$TINY" OMNIMEDIA_MAX_NEW_TOKENS_CAP="${OMNIMEDIA_MAX_NEW_TOKENS_CAP:-24}"
cat <<MSG

NOTE: the tiny checkpoint has RANDOM weights. It runs the real Qwen3-Omni load/generate path, but
every caption below is noise. Real captions need the real checkpoint on a GPU (see README).

MSG
for spec in "speech.wav transcribe srt" "talk.mp4 describe_video vtt" "tone.flac caption_audio srt" "card.png ocr txt"; do
  set -- $spec
  echo "== omnimedia submit $SAMPLES/$1 --task $2 --format $3"
  omnimedia submit "$SAMPLES/$1" --task "$2" --format "$3" 2>&1 | grep -v -E "rope_parameters|Loading weights|UserWarning|warnings.warn"
done
echo "== outputs are under $OMNIMEDIA_DATA_DIR/storage/jobs/; list jobs with: .venv/bin/omnimedia jobs"
