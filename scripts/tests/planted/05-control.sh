#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The control: loads and unloads the module, cleanly. Runs after the
# planted faults, so it passes only if the harness restored the state.
# xv-cost: 0
# xv-expect: ok
set -euo pipefail
insmod "$XV_ROOT/xprtvsock.ko"
rmmod xprtvsock
