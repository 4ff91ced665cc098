#!/usr/bin/env bash
# Fails when proto/ changed in a way that breaks clients or stored events on
# the wire or in JSON (buf's WIRE_JSON rules, buf.yaml), compared with the
# contract as last released: the newest v* tag in HEAD's history; without
# one, the merge base with main (on a branch) or the previous commit of
# main (on main itself). Usage: scripts/buf-breaking.sh [path/to/buf]
set -euo pipefail
cd "$(dirname "$0")/.."
buf=${1:-buf}

head=$(git rev-parse HEAD)
# A shallow clone may lack the base: deepen it when a remote can.
deepen() {
  if [ "$(git rev-parse --is-shallow-repository)" = true ] && [ -n "$(git remote)" ]; then
    git fetch -q --tags --deepen=200 2>/dev/null || true
  fi
}
against_ref() {
  local tag main base
  if tag=$(git describe --tags --abbrev=0 --match 'v*' HEAD 2>/dev/null); then
    echo "$tag"
    return
  fi
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
  echo "buf breaking: skipped, this clone has no history to compare with (no tag, no parent commit)"
  exit 0
fi
if ! git cat-file -e "$ref:proto" 2>/dev/null || ! git cat-file -e "$ref:buf.yaml" 2>/dev/null; then
  echo "buf breaking: skipped, $ref has no proto/ and buf.yaml to compare with"
  exit 0
fi
# The old contract in a directory of its own: works in worktrees and
# shallow clones alike, where buf cannot always read .git itself.
old=$(mktemp -d)
trap 'rm -rf "$old"' EXIT
git archive "$ref" proto buf.yaml | tar -x -C "$old"
echo "buf breaking: against $(git log -1 --format='%h %s' "$ref" | cut -c1-72)"
"$buf" breaking --against "$old"
