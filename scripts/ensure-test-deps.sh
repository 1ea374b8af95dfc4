#!/usr/bin/env bash
# What the test suites need beyond npm and cargo: Debian's Chromium for the browser test.
# Installed with apt-get when missing and we are root; otherwise the browser test says what
# to install.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser test" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "warning: /usr/bin/chromium is missing (apt-get install chromium); the browser test will fail" >&2
fi
