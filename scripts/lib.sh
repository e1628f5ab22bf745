# SPDX-License-Identifier: GPL-2.0
# Shared settings for the xprtvsock scripts. Source it; it defines no side effects.

XV_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
XV_CACHE=${XV_CACHE:-$HOME/.cache/xprtvsock}
XV_BUILD=$XV_ROOT/build
XV_VENV=$XV_CACHE/venv
XV_KERNEL_TARBALL=/usr/src/linux-source-6.12.tar.xz
XV_KERNEL_PACKAGE=linux-source-6.12
XV_JOBS=${XV_JOBS:-$(nproc)}

export PATH="$HOME/.cargo/bin:$XV_VENV/bin:$PATH"

xv_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
xv_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Version of the Debian kernel source package; every kernel cache is keyed by it.
xv_kernel_version() {
	dpkg-query -W -f='${Version}' "$XV_KERNEL_PACKAGE" 2>/dev/null ||
		xv_die "$XV_KERNEL_PACKAGE is not installed (run: make setup)"
}

# The series in order; the cover letter (0000-*) carries no change.
xv_series() { ls "$XV_ROOT"/patches/linux-6.12/*.patch 2>/dev/null | grep -v '/0000-' | sort; }

# Hash of the inputs named, by content, in order.
xv_hash() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

# The kernel build directory of a flavour (debug or release).
xv_kbuild_dir() { echo "$XV_CACHE/kernel/$(xv_kernel_version)/build-$1"; }

# checkpatch --strict over the series, less two complaints each patch that
# raises them justifies in its commit message: new files under directories
# MAINTAINERS already covers, and CamelCase Opt_ enumerators that follow the
# naming of their file.
xv_checkpatch_series() {
	"$1" --strict --quiet --ignore FILE_PATH_CHANGES,CAMELCASE "$2"
}
