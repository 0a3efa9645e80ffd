# Shared by e2e/image and e2e/run (sourced, not run). See docs/integrators.md, "Testing".

export PATH="/usr/bin:/usr/sbin:/bin:/sbin:${PATH}"
export LC_ALL=C.UTF-8

E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The cache lives in the repository directory (.cache/ is git-ignored).
E2E_CACHE=${E2E_CACHE:-${E2E_ROOT}/.cache/e2e}
E2E_SUITE=${E2E_SUITE:-bookworm}
E2E_IMAGE="${E2E_CACHE}/image"
# shellcheck disable=SC2034  # used by the scripts that source this
E2E_KEY_FILE="${E2E_IMAGE}/.provd-e2e-key"

e2e_log() { printf 'e2e: %s\n' "$*" >&2; }
e2e_die() { printf 'e2e: error: %s\n' "$*" >&2; exit 2; }

# The archive URI this machine's apt uses for RELEASE, read through apt's own parser of
# /etc/apt/sources.list and sources.list.d (one-line and deb822 formats alike).
e2e_repo_uri() {
    # shellcheck disable=SC2016  # $(...) is apt's format syntax, not the shell's
    apt-get indextargets --format '$(RELEASE) $(REPO_URI)' 'Created-By: Packages' 2>/dev/null \
        | awk -v rel="$1" '$1 == rel { print $2; exit }'
}

# Mirror (E2E_MIRROR overrides), and the security archive when apt has one.
e2e_mirrors() {
    E2E_MIRROR=${E2E_MIRROR:-$(e2e_repo_uri "${E2E_SUITE}")}
    [[ -n ${E2E_MIRROR} ]] || e2e_die "no '${E2E_SUITE}' archive in this machine's apt sources;" \
        "set E2E_MIRROR=<Debian mirror URL>"
    E2E_SECURITY_MIRROR=${E2E_SECURITY_MIRROR-$(e2e_repo_uri "${E2E_SUITE}-security")}
    # An HTTP proxy apt is configured with is used by debootstrap and by apt in the tree too.
    local proxy=""
    eval "$(apt-config shell proxy Acquire::http::Proxy)"
    if [[ -n ${proxy} && -z ${http_proxy:-} ]]; then export http_proxy=${proxy}; fi
}

# systemd-nspawn without booting: run a command in TREE (private network unless told).
#   e2e_nspawn TREE [nspawn options...] -- command...
e2e_nspawn() {
    local tree=$1
    shift
    systemd-nspawn --quiet --register=no --keep-unit --console=pipe \
        --setenv=DEBIAN_FRONTEND=noninteractive --setenv=LC_ALL=C.UTF-8 \
        --setenv=PATH=/usr/sbin:/usr/bin:/sbin:/bin -D "${tree}" "$@"
}
