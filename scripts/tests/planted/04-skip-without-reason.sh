#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Planted fault: exits 77 without saying why.
# xv-cost: 1
# xv-expect: a skip without a line 'skip: REASON'
exit 77
