#!/usr/bin/env bash
# Fails when a generated file differs from what update-codegen.sh produces:
# generation runs in a scratch copy of the repository and the results are diffed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT

GENERATED=(pkg/generated deploy/crds charts/cvmanager/crds)

# Copy the tracked and untracked (but not ignored) files; generated ones included.
(cd "$ROOT" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$SCRATCH" 2>/dev/null) || \
  cp -a "$ROOT/." "$SCRATCH/"
OUTPUT_ROOT="$SCRATCH" "$SCRATCH/codegen/update-codegen.sh" >/dev/null 2>"$SCRATCH.log" || {
  cat "$SCRATCH.log" >&2; rm -f "$SCRATCH.log"; exit 1; }
rm -f "$SCRATCH.log"

status=0
for dir in "${GENERATED[@]}"; do
  if ! diff -Nru "$ROOT/$dir" "$SCRATCH/$dir"; then
    status=1
  fi
done
# deepcopy lives beside the types.
while IFS= read -r -d '' f; do
  rel="${f#"$SCRATCH"/}"
  if ! diff -Nu "$ROOT/$rel" "$f"; then status=1; fi
done < <(find "$SCRATCH/pkg/apis" -name 'zz_generated.*.go' -print0)

if [[ $status -ne 0 ]]; then
  echo "generated files are out of date: run 'make generate'" >&2
  exit 1
fi
echo "generated files are up to date"
