# shellcheck shell=bash
# Sourced by scripts/setup, scripts/build-static and scripts/image: a private apt state for Debian 12's archive
# (main and its security updates), so packages and source packages can be fetched, and a backports package
# installed, without touching the host's /etc/apt.
#   private_apt DIR TYPE SUITE...   writes DIR's source list (TYPE: deb or deb-src; the security suite is added)
#                                   and sets the array PRIVATE_APT: the options that make apt-get and apt-cache use it
private_apt() {
  local dir=$1 type=$2
  shift 2
  mkdir -p "$dir/parts" "$dir/lists/partial"
  rm -f "$dir/parts/"*.sources
  printf '%s\n' "Types: $type" "URIs: http://deb.debian.org/debian" "Suites: $*" "Components: main" \
    "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" "" \
    "Types: $type" "URIs: http://deb.debian.org/debian-security" "Suites: bookworm-security" "Components: main" \
    "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" > "$dir/parts/debian.sources"
  # shellcheck disable=SC2034 # read by the scripts that source this
  PRIVATE_APT=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$dir/parts"
    -o "Dir::State::Lists=$dir/lists" -o APT::Sandbox::User=root)
}
