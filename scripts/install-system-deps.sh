#!/usr/bin/env bash
# Installs the Debian packages Switchboard needs, only when some are missing.
#   runtime: flite (the default local voice), espeak-ng (the light fallback and every other language),
#            sox
#   tests:   sox (test speech), sip-tester (sipp), baresip, kamailio (real SIP peers on loopback),
#            strace (a test counts the close() calls on a spawned program's pipes),
#            docker-compose (validates compose.yaml without a Docker engine)
set -euo pipefail
want=(flite espeak-ng sox libsox-fmt-all)
if [ "${1:-}" = "--test" ]; then
    want+=(sip-tester baresip kamailio docker-compose strace)
fi
missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "Installing system packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
