#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Planted fault: passes, but leaves xprtvsock loaded.
# xv-cost: 3
# xv-expect: xprtvsock is loaded
set -euo pipefail
insmod "$XV_ROOT/xprtvsock.ko"
