#!/usr/bin/env bash
# Makes a small container image without a registry or a container build tool: an OCI image-layout
# tar (what `skopeo copy oci-archive:` and `ctr images import` read) holding Debian's static
# busybox as its only layer.
#
#   scripts/make-image.sh [NAME [OUTPUT]]
#     NAME    the image reference recorded in the archive (default capstan.local/busybox:1)
#     OUTPUT  the tar to write (default capstan-busybox.tar)
#
# The image runs `sh` by default and has busybox's applets (sh, echo, sleep, cat, ls, wget, httpd,
# nc, ...) as symlinks, as `busybox --install -s` would make them. The output is deterministic:
# the same busybox gives the same bytes, hence the same digests, every time.
set -euo pipefail

NAME="${1:-capstan.local/busybox:1}"
OUTPUT="${2:-capstan-busybox.tar}"
BUSYBOX="${BUSYBOX:-/bin/busybox}"  # Debian's busybox-static

[ -x "$BUSYBOX" ] || { echo "make-image: $BUSYBOX not found (apt-get install busybox-static)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- the root filesystem ---
root="$work/rootfs"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,proc,sys,dev,run,var/tmp,var/www}
chmod 1777 "$root/tmp" "$root/var/tmp"
cp "$BUSYBOX" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
"$BUSYBOX" --list-full | while read -r applet; do
  case "$applet" in */*) ;; *) continue ;; esac  # "linuxrc" has no directory: not an applet to keep
  [ "$applet" = "bin/busybox" ] && continue
  mkdir -p "$root/$(dirname "$applet")"
  ln -sf /bin/busybox "$root/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
chmod 0644 "$root/etc/passwd" "$root/etc/group"

# A tar with no trace of who built it, or when: sorted names, owner root, time 0.
deterministic_tar() {  # DIR OUTPUT
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$1" -cf "$2" .
}

sha256() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }

layout="$work/layout"
blobs="$layout/blobs/sha256"
mkdir -p "$blobs"

# Writes a file into the blob store under its digest and prints the digest.
add_blob() {
  local digest
  digest="$(sha256 "$1")"
  mv "$1" "$blobs/$digest"
  echo "$digest"
}

# --- the layer: diff id = digest of the tar, layer digest = digest of the gzip ---
deterministic_tar "$root" "$work/layer.tar"
diff_id="$(sha256 "$work/layer.tar")"
gzip -n -9 "$work/layer.tar"  # -n: no name or time in the gzip header
layer_size="$(size "$work/layer.tar.gz")"
layer_digest="$(add_blob "$work/layer.tar.gz")"

# --- the image config and the manifest ---
cat > "$work/config.json" <<EOF
{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]},"created":"1970-01-01T00:00:00Z"}
EOF
config_size="$(size "$work/config.json")"
config_digest="$(add_blob "$work/config.json")"

cat > "$work/manifest.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config_digest","size":$config_size},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:$layer_digest","size":$layer_size}]}
EOF
manifest_size="$(size "$work/manifest.json")"
manifest_digest="$(add_blob "$work/manifest.json")"

# --- the layout: index.json names the image (containerd reads io.containerd.image.name; the OCI
# annotation holds the tag, as the image-layout spec intends) ---
tag="${NAME##*:}"
case "$tag" in */*|"$NAME") tag="latest" ;; esac  # "host:port/name" has no tag
printf '{"imageLayoutVersion":"1.0.0"}' > "$layout/oci-layout"
cat > "$layout/index.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$manifest_digest","size":$manifest_size,"annotations":{"io.containerd.image.name":"$NAME","org.opencontainers.image.ref.name":"$tag"}}]}
EOF

deterministic_tar "$layout" "$work/image.tar"
mv "$work/image.tar" "$OUTPUT"
