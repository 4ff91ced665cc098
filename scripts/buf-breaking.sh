#!/usr/bin/env bash
# Fails when proto/ changed in a way that breaks clients or stored events on
# the wire or in JSON (buf's WIRE_JSON rules, buf.yaml), compared with:
#  1. the contract as last released, checked in as a buf image
#     (proto/baseline/orderly-v1.json): always, with or without git history;
#  2. the git baseline when there is one: the merge base with main (on a
#     branch) or the previous commit of main (on main itself), so a change
#     breaks nothing since. A clone without history skips only this part.
# Usage: scripts/buf-breaking.sh [path/to/buf]
#        scripts/buf-breaking.sh --release [path/to/buf]
#   --release rewrites the baseline image from proto/ as it is now: run it
#   when a deliberate release makes the current contract the one clients
#   hold, and commit the image with the release (README, Contract).
set -euo pipefail
cd "$(dirname "$0")/.."
baseline=proto/baseline/orderly-v1.json
release=false
if [ "${1:-}" = --release ]; then
  release=true
  shift
fi
buf=${1:-buf}

if $release; then
  # Without source info (comments, positions) the image holds only what
  # the wire and JSON see; spread over lines, a diff of it is readable.
  "$buf" build --exclude-source-info -o '-#format=json' |
    python3 -m json.tool --indent 1 >"$baseline.tmp" || { rm -f "$baseline.tmp"; exit 1; }
  mv "$baseline.tmp" "$baseline"
  echo "buf breaking: $baseline rewritten from proto/; commit it with the release"
  exit 0
fi

if [ ! -s "$baseline" ]; then
  echo "buf breaking: $baseline is missing (scripts/buf-breaking.sh --release makes it)" >&2
  exit 1
fi
echo "buf breaking: against the released contract ($baseline)"
"$buf" breaking --against "$baseline"

if ! head=$(git rev-parse -q --verify HEAD 2>/dev/null); then
  echo "buf breaking: git baseline skipped, not a git checkout"
  exit 0
fi
# A shallow clone may lack the base: deepen it when a remote can.
deepen() {
  if [ "$(git rev-parse --is-shallow-repository)" = true ] && [ -n "$(git remote)" ]; then
    git fetch -q --deepen=200 2>/dev/null || true
  fi
}
against_ref() {
  local main base
  for main in origin/main main; do
    if base=$(git merge-base HEAD "$main" 2>/dev/null); then
      if [ "$base" != "$head" ]; then
        echo "$base"
        return
      fi
      break
    fi
  done
  git rev-parse -q --verify 'HEAD^1' 2>/dev/null || true
}

ref=$(against_ref)
if [ -z "$ref" ]; then
  deepen
  ref=$(against_ref)
fi
if [ -z "$ref" ]; then
  echo "buf breaking: git baseline skipped, this clone has no history (no parent commit)"
  exit 0
fi
if ! git cat-file -e "$ref:proto" 2>/dev/null || ! git cat-file -e "$ref:buf.yaml" 2>/dev/null; then
  echo "buf breaking: git baseline skipped, $ref has no proto/ and buf.yaml to compare with"
  exit 0
fi
# The old contract in a directory of its own: works in worktrees and
# shallow clones alike, where buf cannot always read .git itself.
old=$(mktemp -d)
trap 'rm -rf "$old"' EXIT
git archive "$ref" proto buf.yaml | tar -x -C "$old"
echo "buf breaking: against $(git log -1 --format='%h %s' "$ref" | cut -c1-72)"
"$buf" breaking --against "$old"
