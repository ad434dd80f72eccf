#!/usr/bin/env bash
# System packages the tests need, from Debian's registry when missing:
# - libssl-dev and pkg-config: librdkafka (the test peer, the `rdkafka` dev-dependency) is built
#   with OpenSSL for its TLS and SCRAM. kprod itself uses rustls and needs neither.
# - stunnel4: an OpenSSL TLS terminator in front of tansu (whose own TLS does not serve), so
#   kprod's TLS meets a real broker through a TLS stack that is not rustls.
set -euo pipefail
need=()
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
# - openssl (the command): the key-format tests turn keys into PKCS#1 and SEC1 and encrypt one.
command -v openssl >/dev/null || need+=(openssl)
command -v stunnel4 >/dev/null || command -v stunnel >/dev/null || need+=(stunnel4)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} (Debian packages)"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
