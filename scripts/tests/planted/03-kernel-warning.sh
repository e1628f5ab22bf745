#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Planted fault: a test module logs a kernel warning; the case itself
# exits 0 and unloads what it loaded.
# xv-cost: 3
# xv-expect: kernel splat during the case
set -euo pipefail
insmod "$XV_HARNESS_BUILD/xv_splat.ko"
rmmod xv_splat
