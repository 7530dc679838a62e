#!/usr/bin/env bash
# Checks that each vendored crate is exactly its published release plus the patches kept in the
# repository: vendor/<crate> must equal the crates.io package of the version its Cargo.toml
# names, with vendor/patches/<crate>/*.patch applied in order. Fails with the difference
# otherwise. Run by `make lint`.
#
# The release comes from cargo's registry cache ($CARGO_HOME/registry/cache); a release not
# there yet is fetched into it first with a throwaway manifest and `cargo fetch`, so this works
# on a fresh machine.
#
# Keep-list: vendor/ keeps only part of a package. Dropped before the patches are applied, so
# they appear in no patch: the files cargo adds when it packages a crate (.cargo_vcs_info.json,
# Cargo.lock, Cargo.toml.orig) and the package's tests/, benches/ and examples/ directories.
# Every other difference from the release, the manifest's edits included, is a patch.
# Not compared: vendor/<crate>/PATCHES.md (ours: what each patch changes and why).
#
# To change a vendored crate: edit vendor/<crate>, then add the difference as the next patch
# (`scripts/check-vendor.sh` prints it when it fails) and describe it in PATCHES.md.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cargo_home=${CARGO_HOME:-$HOME/.cargo}
drop=(.cargo_vcs_info.json Cargo.lock Cargo.toml.orig tests benches examples)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The .crate file of name-version in the registry cache, fetched there if absent.
release() {
  local name=$1 version=$2 found
  found=$(compgen -G "$cargo_home/registry/cache/*/$name-$version.crate" | head -n 1 || true)
  if [ -z "$found" ]; then
    local fetch="$work/fetch-$name"
    mkdir -p "$fetch/src"
    : >"$fetch/src/lib.rs"
    cat >"$fetch/Cargo.toml" <<EOF
[package]
name = "vendor-fetch"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
$name = { version = "=$version", default-features = false }
EOF
    (cd "$fetch" && cargo fetch --quiet) >&2
    found=$(compgen -G "$cargo_home/registry/cache/*/$name-$version.crate" | head -n 1 || true)
  fi
  [ -n "$found" ] || { echo "check-vendor: $name $version is not in cargo's registry" >&2; return 1; }
  printf '%s\n' "$found"
}

status=0
for dir in "$top"/vendor/*/; do
  dir=${dir%/}
  name=$(basename "$dir")
  [ "$name" = patches ] && continue
  version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$dir/Cargo.toml" | head -n 1)
  crate=$(release "$name" "$version")
  tar -xzf "$crate" -C "$work"
  built="$work/$name-$version"
  for d in "${drop[@]}"; do rm -rf "${built:?}/$d"; done
  for p in "$top/vendor/patches/$name"/*.patch; do
    [ -e "$p" ] || continue
    if ! (cd "$built" && git apply -p1 "$p") >"$work/patch.log" 2>&1; then
      echo "check-vendor: $(basename "$p") does not apply to $name $version:" >&2
      cat "$work/patch.log" >&2
      status=1
      continue 2
    fi
  done
  if diff -ruN -x PATCHES.md "$built" "$dir" >"$work/diff"; then
    echo "check-vendor: vendor/$name is $name $version plus $(ls "$top/vendor/patches/$name"/*.patch 2>/dev/null | wc -l) patches"
  else
    echo "check-vendor: vendor/$name differs from $name $version plus vendor/patches/$name:" >&2
    sed "s#$work/##" "$work/diff" >&2
    status=1
  fi
done
exit $status
