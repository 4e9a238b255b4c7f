# shellcheck shell=bash
# Shared by scripts/deps/*.sh: run as root (sudo when not), and `apt-get install` with one
# `apt-get update` per script. Source it; it defines functions only.

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=""
apt_install() {
    if [ -z "$apt_updated" ]; then
        as_root apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}
