#!/bin/sh
# The runtime image's whole file system, in one place. The Dockerfile's build
# stage runs this, and so does scripts/image/assemble (the tests and the
# release), so the image built by `docker build` and the one the tests run
# cannot drift apart. Everything else about the image (user, entrypoint,
# labels) is the Dockerfile's `runtime` stage, which both build as written.
#
# usage: image/rootfs.sh BINARY OUT_DIR
#   BINARY   a static replicant binary (scripts/release/build-binary)
#   OUT_DIR  created; becomes the image's / (it must not exist yet)
# CA_BUNDLE  (env) the CA certificates to ship, default Debian's bundle
set -eu

if [ $# -ne 2 ]; then
  echo "usage: $0 BINARY OUT_DIR" >&2
  exit 2
fi
binary=$1
out=$2
ca_bundle=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

[ -f "$binary" ] || { echo "$0: $binary: no such file" >&2; exit 1; }
[ -s "$ca_bundle" ] || { echo "$0: $ca_bundle: no CA bundle (install ca-certificates)" >&2; exit 1; }
[ ! -e "$out" ] || { echo "$0: $out already exists" >&2; exit 1; }
# a dynamically linked binary would not start in an image without a libc
if command -v file >/dev/null 2>&1 && file -L "$binary" | grep -q 'dynamically linked'; then
  echo "$0: $binary is dynamically linked; build it with scripts/release/build-binary" >&2
  exit 1
fi

umask 022
mkdir -p "$out/usr/local/bin" "$out/etc/ssl/certs" "$out/config"
install -m 0755 "$binary" "$out/usr/local/bin/replicant"
install -m 0644 "$ca_bundle" "$out/etc/ssl/certs/ca-certificates.crt"
# user and group 65532 ("nonroot", as in distroless images) so that tools
# and `id` show a name; the image runs as 65532:65532 (Dockerfile USER)
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$out/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$out/etc/group"
# /config is where the config is mounted (the default --config-file is
# /config/replicant.yaml). There is no /tmp: replicant writes nothing but
# the OCI layouts the user mounts, so the root file system can be read-only.
chmod 0755 "$out/config"
