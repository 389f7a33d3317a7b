#!/usr/bin/env bash
# The programs some tests drive, from Debian's packages, installed once (idempotent):
# a headless Chromium for the tests that render fntree's HTML (the timeline, the notebook
# display) and look at the screenshots, and tmux for the tests that read the live display
# off a real 80-column terminal.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v tmux >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core tmux >/dev/null
command -v chromium >/dev/null
command -v tmux >/dev/null
