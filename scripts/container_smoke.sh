#!/usr/bin/env bash
# `make container-smoke`: build the Dockerfile's runtime target with podman, run it with
# `--env-file` a copy of .env.example (HOST=127.0.0.1, PORT=8000: a dev's .env) and check what
# `docker run -p 8080:8080 IMAGE` promises:
#   /health answers 200 on 8080, the embedded database is seeded (GET /api/v1/passengers?limit=5
#   gives 5 items), the image's HEALTHCHECK passes, and the server does not run as root.
# Then the lambda-app target (the Lambda image without the adapter, which comes from ECR): moto is
# not installed, the app imports. Both images' sizes are printed (podman's figure, uncompressed).
#
# No Docker engine is needed: podman (with runc) builds and runs the image as root. The base image
# is a Debian bookworm rootfs made with debootstrap from the mirror this machine's apt uses, with
# this machine's local CA certificates added (so pip inside the build trusts the same TLS chain);
# it is imported once as localhost/app-base:bookworm and reused while its inputs are unchanged.
# Where podman cannot be installed (not root, no apt-get, apt-get fails), it says why and skips
# (exit 0). Any failure after that is a FAIL (exit 1). It binds only 127.0.0.1, and it stops and
# removes the container it started.
#
# Environment (all optional): CONTAINER_SMOKE_MIRROR (Debian mirror URL for debootstrap; default:
# the one apt uses here), CONTAINER_SMOKE_REBUILD_BASE=1 (make the base again).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STATE=$ROOT/.container
SUITE=bookworm
BASE_IMAGE=localhost/app-base:$SUITE
IMAGE=localhost/app-lib:smoke
LAMBDA_IMAGE=localhost/app-lib:smoke-lambda
CONTAINER=app-lib-smoke-$$
LOCAL_CA_DIR=/usr/local/share/ca-certificates
PACKAGES=(podman buildah runc uidmap slirp4netns fuse-overlayfs debootstrap)
COMMANDS=(podman buildah runc newuidmap slirp4netns fuse-overlayfs debootstrap)
CHECKS_FAILED=0
CHECKS_PASSED=0
STARTED=$SECONDS

say() { printf 'container-smoke: %s\n' "$*"; }
pass() { printf 'PASS: %s\n' "$*"; CHECKS_PASSED=$((CHECKS_PASSED + 1)); }
fail() { printf 'FAIL: %s\n' "$*"; CHECKS_FAILED=$((CHECKS_FAILED + 1)); }
skip() { printf 'SKIP: container-smoke skipped: %s\n' "$*"; exit 0; }
die() { printf 'FAIL: %s\n' "$*"; exit 1; }
show_log() { printf '  | %s\n' "--- last lines of $1 ---"; tail -n "${2:-40}" "$1" | sed 's/^/  | /'; }

# --- 1. tools -------------------------------------------------------------------------------
missing_tools() {
    local cmd path
    for cmd in "${COMMANDS[@]}"; do
        path=$(PATH=$PATH:/usr/sbin:/sbin command -v "$cmd" 2>/dev/null || true)
        [ -n "$path" ] && [ -x "$path" ] || printf '%s ' "$cmd"
    done
}

need_root() {  # apt-get, debootstrap, chroot and rootful podman: root, or sudo without a password
    [ "$(id -u)" -eq 0 ] && return 0
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        say "not root: running again with sudo"
        exec sudo -n -E bash "$ROOT/scripts/container_smoke.sh"
    fi
    skip "needs root (apt-get, debootstrap, chroot and podman run as root) and sudo -n is not available"
}

install_tools() {
    local missing
    missing=$(missing_tools)
    [ -z "$missing" ] && return 0
    say "not installed: $missing- installing ${PACKAGES[*]} with apt-get"
    command -v apt-get >/dev/null 2>&1 || skip "no apt-get to install podman with (missing: $missing)"
    mkdir -p "$STATE"
    if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        "${PACKAGES[@]}"; } >"$STATE/apt.log" 2>&1; then
        show_log "$STATE/apt.log" 15
        skip "apt-get could not install ${PACKAGES[*]} (log above)"
    fi
    missing=$(missing_tools)
    [ -z "$missing" ] || skip "apt-get ran but these are still missing: $missing"
}

# --- 2. podman configuration: runc (crun fails on hybrid cgroups here) and explicit rlimits ---
configure_podman() {
    mkdir -p "$STATE"
    cat >"$STATE/containers.conf" <<'EOF'
# Written by scripts/container_smoke.sh.
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]

[engine]
runtime = "runc"
EOF
    export CONTAINERS_CONF=$STATE/containers.conf
    podman info >"$STATE/podman-info.log" 2>&1 || {
        show_log "$STATE/podman-info.log" 20
        die "podman does not work on this machine (podman info failed)"
    }
}

# --- 3. base image --------------------------------------------------------------------------
# The first http(s) mirror that apt's enabled sources list for $SUITE (deb822 .sources, then
# one-line .list files); else the first non-security deb mirror.
apt_mirror() {
    local files=() f
    for f in /etc/apt/sources.list.d/*.sources; do [ -f "$f" ] && files+=("$f"); done
    if [ ${#files[@]} -gt 0 ]; then
        awk -v suite="$SUITE" '
            BEGIN { RS = ""; FS = "\n" }
            {
                delete field; key = ""
                for (i = 1; i <= NF; i++) {
                    line = $i
                    if (line ~ /^#/) continue
                    if (line ~ /^[ \t]/) { if (key != "") field[key] = field[key] " " line; continue }
                    p = index(line, ":"); if (p == 0) continue
                    key = tolower(substr(line, 1, p - 1)); field[key] = substr(line, p + 1)
                }
                if (tolower(field["enabled"]) ~ /no/ || (" " field["types"] " ") !~ /[ \t]deb[ \t]/) next
                n = split(field["uris"], uris, /[ \t]+/); m = split(field["suites"], suites, /[ \t]+/)
                for (j = 1; j <= m; j++) for (k = 1; k <= n; k++) if (uris[k] ~ /^https?:\/\//) {
                    if (suites[j] == suite) exact = exact ? exact : uris[k]
                    else if (suites[j] !~ /security/) other = other ? other : uris[k]
                }
            }
            END { print exact ? exact : other }' "${files[@]}"
    fi
    files=()
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do [ -f "$f" ] && files+=("$f"); done
    if [ ${#files[@]} -gt 0 ]; then
        awk -v suite="$SUITE" '
            $1 != "deb" { next }
            {
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                uri = $i; s = $(i + 1)
                if (uri !~ /^https?:\/\//) next
                if (s == suite) exact = exact ? exact : uri
                else if (s !~ /security/) other = other ? other : uri
            }
            END { print exact ? exact : other }' "${files[@]}"
    fi
}

unmount_under() {  # debootstrap mounts proc/sys inside the target; never rm -rf through them
    local target
    findmnt -rn -o TARGET 2>/dev/null | grep -F "$1/" | sort -r | while read -r target; do
        umount -l "$target" 2>/dev/null || true
    done || true
}

make_base() {
    local mirror key current rootfs=$STATE/rootfs
    mirror=${CONTAINER_SMOKE_MIRROR:-$(apt_mirror | grep -m1 . || true)}
    [ -n "$mirror" ] || die "no http(s) Debian mirror found in /etc/apt/sources.list{,.d/*} (set CONTAINER_SMOKE_MIRROR)"
    # The base is remade when its inputs change: suite, mirror or this machine's local CAs.
    key=$( { echo "$SUITE $mirror"; find "$LOCAL_CA_DIR" -type f -name '*.crt' -print0 2>/dev/null \
        | sort -z | xargs -0 -r cat || true; } | sha256sum | cut -c1-16)
    current=$(podman image inspect --format '{{index .Labels "app-base.key"}}' "$BASE_IMAGE" 2>/dev/null || true)
    if [ "$current" = "$key" ] && [ "${CONTAINER_SMOKE_REBUILD_BASE:-0}" != 1 ]; then
        say "base $BASE_IMAGE is cached (key $key)"
        return 0
    fi
    say "making base $BASE_IMAGE: debootstrap $SUITE from $mirror (a minute or two)"
    unmount_under "$rootfs"
    rm -rf --one-file-system "$rootfs"
    if ! debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
        "$SUITE" "$rootfs" "$mirror" >"$STATE/debootstrap.log" 2>&1; then
        unmount_under "$rootfs"
        show_log "$STATE/debootstrap.log" 30
        die "debootstrap $SUITE from $mirror failed"
    fi
    unmount_under "$rootfs"
    # This machine's own local CA certificates (the ones update-ca-certificates adds from
    # $LOCAL_CA_DIR), so TLS from inside the build trusts what it trusts here.
    if [ -d "$LOCAL_CA_DIR" ]; then
        mkdir -p "$rootfs$LOCAL_CA_DIR"
        cp -a "$LOCAL_CA_DIR/." "$rootfs$LOCAL_CA_DIR/"
    fi
    chroot "$rootfs" update-ca-certificates >>"$STATE/debootstrap.log" 2>&1 \
        || { show_log "$STATE/debootstrap.log" 20; die "update-ca-certificates in the base failed"; }
    chroot "$rootfs" apt-get clean >/dev/null 2>&1 || true
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/tmp/* 2>/dev/null || true
    tar -C "$rootfs" -c . | podman import --change "LABEL app-base.key=$key" \
        --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >"$STATE/import.log" 2>&1 \
        || { show_log "$STATE/import.log" 20; die "podman import of the base failed"; }
    rm -rf --one-file-system "$rootfs"
    say "base $BASE_IMAGE made (key $key)"
}

# --- 4. image -------------------------------------------------------------------------------
build_target() {  # TARGET TAG
    local before after
    before=$(podman image inspect --format '{{.Id}}' "$2" 2>/dev/null || true)
    say "building $2 (target $1, BASE=$BASE_IMAGE)"
    # --format docker keeps HEALTHCHECK (the OCI format has no field for it).
    if ! podman build --network host --format docker --target "$1" \
        --build-arg "BASE=$BASE_IMAGE" -t "$2" -f Dockerfile . >"$STATE/build-$1.log" 2>&1; then
        show_log "$STATE/build-$1.log" 40
        die "podman build --target $1 failed"
    fi
    after=$(podman image inspect --format '{{.Id}}' "$2")
    # Drop the previous smoke image (its layers only): each rebuild would otherwise keep one.
    if [ -n "$before" ] && [ "$before" != "$after" ]; then
        podman rmi "$before" >/dev/null 2>&1 || true
    fi
}

build_image() {
    build_target runtime "$IMAGE"
    build_target lambda-app "$LAMBDA_IMAGE"
}

image_mb() {
    podman image inspect --format '{{.Size}}' "$1" | awk '{printf "%.0f", $1 / 1000000}'
}

venv_size() {  # "N MB, M packages" of an image's /opt/venv
    podman run --rm "$1" sh -c 'printf "%s MB, %s packages" "$(du -sm /opt/venv | cut -f1)" \
        "$(ls -d /opt/venv/lib/python3*/site-packages/*.dist-info | wc -l)"' 2>/dev/null || echo "?"
}

lambda_checks() {
    local out
    if out=$(podman run --rm "$LAMBDA_IMAGE" python -c 'import moto' 2>&1); then
        fail "lambda-app image: moto is installed"
    else
        pass "lambda-app image has no moto (import moto: ${out##*$'\n'})"
    fi
    if out=$(podman run --rm "$LAMBDA_IMAGE" python -c \
        'import app_lib.main as m; m.app_factory; print("ok")' 2>&1) && [ "${out##*$'\n'}" = ok ]; then
        pass "lambda-app image imports the app"
    else
        fail "lambda-app image does not import the app: ${out:0:300}"
    fi
    say "image sizes: runtime $(image_mb "$IMAGE") MB, lambda-app $(image_mb "$LAMBDA_IMAGE") MB," \
        "base $(image_mb "$BASE_IMAGE") MB (the lambda image adds the Lambda Web Adapter, ~10 MB)"
    say "installed (/opt/venv): runtime $(venv_size "$IMAGE"), lambda-app $(venv_size "$LAMBDA_IMAGE")"
}

# --- 5. run and check -----------------------------------------------------------------------
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# GET a URL; prints "STATUS BODY" (STATUS 000 when nothing answers).
http_get() {
    python3 - "$1" <<'EOF'
import sys
import urllib.error
import urllib.request

try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as response:  # noqa: S310
        print(response.status, response.read().decode("utf-8", "replace"))
except urllib.error.HTTPError as error:
    print(error.code, error.read().decode("utf-8", "replace"))
except Exception as error:  # noqa: BLE001
    print("000", repr(error))
EOF
}

count_items() {  # number of items in a {"items": [...]} body, or -1
    python3 -c 'import json, sys
try:
    print(len(json.loads(sys.argv[1])["items"]))
except Exception:
    print(-1)' "$1"
}

cleanup() {
    podman rm -f -t 5 "$CONTAINER" >/dev/null 2>&1 || true
}

run_checks() {
    local port base reply status body deadline items uid user
    port=$(free_port)
    base=http://127.0.0.1:$port
    trap cleanup EXIT
    # A dev's .env (HOST=127.0.0.1, PORT=8000): the image serves on 0.0.0.0:8080 all the same.
    # DATA_DIR stays the image's (.data is relative to /app, the app user's).
    cp .env.example "$STATE/env"
    # --health-interval disable: no systemd timer (there may be no systemd); the HEALTHCHECK is
    # still run below, once, by `podman healthcheck run`.
    podman run -d --name "$CONTAINER" --health-interval disable -p "127.0.0.1:$port:8080" \
        --env-file "$STATE/env" "$IMAGE" >"$STATE/run.log" 2>&1 \
        || { show_log "$STATE/run.log" 20; die "podman run failed"; }
    say "container $CONTAINER started, 127.0.0.1:$port -> 8080"

    deadline=$((SECONDS + 90))
    while :; do
        reply=$(http_get "$base/health"); status=${reply%% *}
        [ "$status" = 200 ] && break
        if [ "$(podman inspect --format '{{.State.Running}}' "$CONTAINER" 2>/dev/null)" != true ] \
            || [ $SECONDS -ge $deadline ]; then
            break
        fi
        sleep 1
    done
    if [ "$status" = 200 ]; then
        pass "GET /health -> 200 (${reply#* })"
    else
        fail "GET /health -> ${reply:0:200} (container running: $(podman inspect --format \
            '{{.State.Running}}' "$CONTAINER" 2>/dev/null || echo gone))"
    fi

    # Seeding runs at start-up: allow it a bounded time.
    deadline=$((SECONDS + 60))
    while :; do
        reply=$(http_get "$base/api/v1/passengers?limit=5"); status=${reply%% *}; body=${reply#* }
        items=-1
        [ "$status" = 200 ] && items=$(count_items "$body")
        [ "$items" = 5 ] && break
        [ $SECONDS -ge $deadline ] && break
        sleep 2
    done
    if [ "$items" = 5 ]; then
        pass "GET /api/v1/passengers?limit=5 -> 200 with 5 items (embedded database seeded)"
    else
        fail "GET /api/v1/passengers?limit=5 -> status $status, items $items: ${body:0:200}"
    fi

    if podman healthcheck run "$CONTAINER" >"$STATE/healthcheck.log" 2>&1; then
        pass "image HEALTHCHECK passes (podman healthcheck run)"
    else
        fail "image HEALTHCHECK: $(tr '\n' ' ' <"$STATE/healthcheck.log" | cut -c1-200)"
    fi

    uid=$(podman exec "$CONTAINER" id -u 2>/dev/null || echo "?")
    # The uid the server process (pid 1 in the container) really runs as.
    user=$(podman exec "$CONTAINER" sh -c 'grep "^Uid:" /proc/1/status' 2>/dev/null | awk '{print $2}' || true)
    if [ -n "$uid" ] && [ "$uid" != "?" ] && [ "$uid" != 0 ] && [ -n "$user" ] && [ "$user" != 0 ]; then
        pass "runs as non-root (exec uid $uid, server process uid $user, image user $(podman \
            image inspect --format '{{.Config.User}}' "$IMAGE"))"
    else
        fail "runs as root or unknown (exec uid '$uid', server process uid '$user')"
    fi

    if [ "$CHECKS_FAILED" -ne 0 ]; then
        podman logs --tail 40 "$CONTAINER" >"$STATE/container.log" 2>&1 || true
        show_log "$STATE/container.log" 40
    fi
}

need_root
install_tools
configure_podman
t0=$SECONDS; make_base; t_base=$((SECONDS - t0))
t0=$SECONDS; build_image; t_build=$((SECONDS - t0))
t0=$SECONDS; run_checks; lambda_checks; t_run=$((SECONDS - t0))
say "timing: base ${t_base}s, build ${t_build}s, run+checks ${t_run}s, total $((SECONDS - STARTED))s"
if [ "$CHECKS_FAILED" -ne 0 ]; then
    say "FAILED ($CHECKS_FAILED of $((CHECKS_PASSED + CHECKS_FAILED)) checks)"
    exit 1
fi
say "OK (all $CHECKS_PASSED checks)"
