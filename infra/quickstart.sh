#!/usr/bin/env bash
# The main job on the embedded default (SQLite, local folder, in-process worker, no servers):
# build the tiny random Qwen3-Omni checkpoint, make sample media, caption it.
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"
cd "$ROOT"
export OMNIMEDIA_DATA_DIR="${OMNIMEDIA_DATA_DIR:-$ROOT/.omnimedia}"
TINY="$OMNIMEDIA_DATA_DIR/tiny-qwen3-omni"
SAMPLES="$OMNIMEDIA_DATA_DIR/samples"
[ -f "$TINY/model.safetensors" ] || python -m models.fixtures.tiny "$TINY"
python -m bench.samples "$SAMPLES"
export OMNIMEDIA_MODEL="$TINY" OMNIMEDIA_MAX_NEW_TOKENS_CAP="${OMNIMEDIA_MAX_NEW_TOKENS_CAP:-24}"
cat <<MSG

NOTE: the tiny checkpoint has RANDOM weights. It runs the real Qwen3-Omni load/generate path, but
every caption below is noise. Real captions need the real checkpoint on a GPU (see README).

MSG
echo "== omnimedia caption $SAMPLES --task custom (audio, video and images in one resumable run)"
omnimedia caption "$SAMPLES" --task custom -p "prompt=Describe this in one sentence." --out "$OMNIMEDIA_DATA_DIR/captions" \
  2> >(grep -v -E "rope_parameters|Loading weights|UserWarning|warnings.warn|cap_pixels_per_frame" >&2)
echo
echo "== $OMNIMEDIA_DATA_DIR/captions/speech.srt (noise from random weights):"
cat "$OMNIMEDIA_DATA_DIR/captions/speech.srt"
echo "== one file at a time: omnimedia submit $SAMPLES/talk.mp4 --task describe_video --format vtt"
omnimedia submit "$SAMPLES/talk.mp4" --task describe_video --format vtt 2>/dev/null
echo "== rerun the caption command: nothing finished is redone; list jobs with: .venv/bin/omnimedia jobs"
