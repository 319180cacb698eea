#!/usr/bin/env bash
# The Debian package (what `make package` builds with CPack) holds the
# binaries, the bundled llama.cpp libraries, the unit, the default config and
# the crash catalog, the GPU backend plugins; the packaged programs run from the extracted tree (no
# build paths); the unit passes `systemd-analyze verify`. A missing dpkg-deb
# or systemd-analyze fails under `make test` and CI (tests/require.sh), else
# skips (exit 77, CTest's SKIP_RETURN_CODE) or skips that check.
# Usage: package_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
# shellcheck source=tests/require.sh
source "$(dirname "$0")/../require.sh"
command -v dpkg-deb >/dev/null 2>&1 || { mw_missing "dpkg-deb (Debian package 'dpkg')"; exit 77; }
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

( cd "$build" && cpack -G DEB -B "$tmp/out" >"$tmp/cpack.log" 2>&1 ) || { cat "$tmp/cpack.log"; fail "cpack"; }
deb=$(ls "$tmp"/out/modelwarden_*.deb 2>/dev/null | head -1)
[[ -n "$deb" ]] || { cat "$tmp/cpack.log"; fail "no modelwarden_*.deb"; }
echo "package: $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"

dpkg-deb -c "$deb" >"$tmp/contents"
for f in ./usr/lib/modelwarden/bin/modelwarden ./usr/lib/modelwarden/bin/modelwarden-worker \
         ./usr/lib/modelwarden/bin/mw-keeper ./usr/bin/modelwarden ./lib/systemd/system/modelwarden.service \
         ./etc/modelwarden/config.toml ./usr/share/modelwarden/crash_patterns.toml \
         ./usr/lib/modelwarden/lib/libggml-base.so ./usr/lib/modelwarden/share/modelwarden/ggml-vocab-llama-spm.gguf \
         ./usr/lib/modelwarden/lib/libggml-vulkan.so \
         ./usr/share/doc/modelwarden/README.md ./usr/share/doc/modelwarden/operations.md; do
  grep -q " $f\( \|$\)" "$tmp/contents" || { cat "$tmp/contents"; fail "$f is not in the package"; }
done
grep -q "^l.* ./usr/bin/modelwarden -> ../lib/modelwarden/bin/modelwarden$" "$tmp/contents" \
  || fail "/usr/bin/modelwarden is not a link to the packaged binary"
grep -Eq " ./usr/lib/modelwarden/lib/libllama[^ ]*\.so" "$tmp/contents" || fail "libllama is not bundled"

dpkg-deb -f "$deb" Package Version Architecture Depends >"$tmp/control"
grep -q "^Depends: .*libsqlite3" "$tmp/control" || { cat "$tmp/control"; fail "Depends lacks libsqlite3"; }
# Listings go to files before grep reads them: `producer | grep -q` under
# pipefail fails at random when grep exits at its first match and the producer
# dies of SIGPIPE (it failed CI once exactly so).
dpkg-deb --ctrl-tarfile "$deb" | tar -t >"$tmp/ctrl-files"
grep -q conffiles "$tmp/ctrl-files" || { cat "$tmp/ctrl-files"; fail "no conffiles"; }
dpkg-deb -I "$deb" conffiles >"$tmp/conffiles"
grep -qx /etc/modelwarden/config.toml "$tmp/conffiles" || { cat "$tmp/conffiles"; fail "config.toml is not a conffile"; }

# The packaged programs work from the package's own tree: the worker finds the
# bundled libraries through its RUNPATH ($ORIGIN/../lib), make-test-model its tokenizer.
root="$tmp/root"
dpkg-deb -x "$deb" "$root"
readelf -d "$root/usr/lib/modelwarden/bin/modelwarden-worker" >"$tmp/dynamic"
grep -q 'RUNPATH.*\[\$ORIGIN/../lib\]' "$tmp/dynamic" \
  || fail "the worker's RUNPATH is not \$ORIGIN/../lib: $(grep -i path "$tmp/dynamic")"
env -i PATH=/usr/bin:/bin "$root/usr/bin/modelwarden" make-test-model "$tmp/tiny.gguf" >"$tmp/mtm.log" 2>&1 \
  || { cat "$tmp/mtm.log"; fail "packaged make-test-model"; }
# The worker answers on fd 3 (docs/worker-protocol.md); its log goes to stderr.
env -i PATH=/usr/bin:/bin "$root/usr/lib/modelwarden/bin/modelwarden-worker" probe 3>"$tmp/probe.out" \
  >"$tmp/probe.log" 2>&1 || { cat "$tmp/probe.log"; fail "packaged worker probe"; }
grep -q '"cpu"' "$tmp/probe.out" || { cat "$tmp/probe.out" "$tmp/probe.log"; fail "the packaged worker saw no CPU device"; }
grep -q "loaded CPU backend from $root/usr/lib/modelwarden/" "$tmp/probe.log" \
  || { cat "$tmp/probe.log"; fail "the packaged worker did not load its backends from the package"; }
# SPEC §15: its Vulkan backend, from the package, sees Mesa's lavapipe as Vulkan0
# (scripts/bootstrap installs mesa-vulkan-drivers) when GGML_VK_VISIBLE_DEVICES names it.
env -i PATH=/usr/bin:/bin GGML_VK_VISIBLE_DEVICES=0 "$root/usr/lib/modelwarden/bin/modelwarden-worker" probe \
  3>"$tmp/probe-vk.out" >"$tmp/probe-vk.log" 2>&1 || { cat "$tmp/probe-vk.log"; fail "packaged worker probe (Vulkan)"; }
grep -q '"name":"Vulkan0"' "$tmp/probe-vk.out" && grep -q '"backend":"Vulkan"' "$tmp/probe-vk.out" \
  || { cat "$tmp/probe-vk.out" "$tmp/probe-vk.log"; fail "the packaged worker did not probe Vulkan0"; }
grep -q "loaded Vulkan backend from $root/usr/lib/modelwarden/" "$tmp/probe-vk.log" \
  || { cat "$tmp/probe-vk.log"; fail "the packaged worker did not load libggml-vulkan.so from the package"; }

if command -v systemd-analyze >/dev/null 2>&1; then
  # verify needs ExecStart to exist: point it at the extracted binary.
  sed "s|/usr/bin/modelwarden|$root/usr/bin/modelwarden|" "$src/packaging/modelwarden.service" >"$tmp/modelwarden.service"
  if ! systemd-analyze verify "$tmp/modelwarden.service" >"$tmp/verify.log" 2>&1 || [[ -s "$tmp/verify.log" ]]; then
    cat "$tmp/verify.log"
    fail "systemd-analyze verify found problems in packaging/modelwarden.service"
  fi
  echo "systemd-analyze verify: clean"
else
  mw_missing "systemd-analyze (Debian package 'systemd'; scripts/bootstrap installs it): the unit was not verified"
fi
echo "PASS"
