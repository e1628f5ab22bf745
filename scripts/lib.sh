# SPDX-License-Identifier: GPL-2.0
# Shared settings for the xprtvsock scripts. Source it; it defines no side effects.

XV_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
XV_CACHE=${XV_CACHE:-$HOME/.cache/xprtvsock}
XV_BUILD=${XV_BUILD:-$XV_ROOT/build}
# The Python venv of virtme-ng, xml2rfc and matplotlib; a developer may
# point it elsewhere, e.g. to keep the kernel cache read-only.
XV_VENV=${XV_VENV:-$XV_CACHE/venv}
XV_KERNEL_PACKAGE=linux-source-6.12
# The kernel inputs; the cache test points them at a small stand-in.
XV_KERNEL_TARBALL=${XV_KERNEL_TARBALL:-/usr/src/linux-source-6.12.tar.xz}
XV_SERIES_DIR=${XV_SERIES_DIR:-$XV_ROOT/patches/linux-6.12}
XV_KCONFIG=${XV_KCONFIG:-$XV_ROOT/scripts/kconfig}
XV_JOBS=${XV_JOBS:-$(nproc)}

export PATH="$HOME/.cargo/bin:$XV_VENV/bin:$PATH"

xv_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
xv_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Version of the Debian kernel source package; every kernel cache is keyed by it.
xv_kernel_version() {
	[[ -z ${XV_KERNEL_VERSION:-} ]] || { echo "$XV_KERNEL_VERSION"; return; }
	dpkg-query -W -f='${Version}' "$XV_KERNEL_PACKAGE" 2>/dev/null ||
		xv_die "$XV_KERNEL_PACKAGE is not installed (run: make setup)"
}

# The series in order; the cover letter (0000-*) carries no change.
xv_series() { ls "$XV_SERIES_DIR"/*.patch 2>/dev/null | grep -v '/0000-' | sort; }

# Git without background work: a commit of the 80,000-file kernel tree would
# otherwise start `git gc --auto`, which outlives the script and holds
# HEAD.lock while the series is applied.
xv_git() {
	git -c gc.auto=0 -c gc.autoDetach=false -c maintenance.auto=false \
		-c core.fsmonitor=false "$@"
}

# The same settings, kept in a repository's own config, for any git that
# later runs there (scripts/series-check, a developer's shell).
xv_git_quiet_config() {
	git -C "$1" config gc.auto 0
	git -C "$1" config gc.autoDetach false
	git -C "$1" config maintenance.auto false
	git -C "$1" config core.fsmonitor false
}

# Hash of the inputs named, by content, in order.
xv_hash() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

# The make variables that choose a flavour's compilers. The debug kernel is
# built with clang 19 (Debian 12's newest): 6.12 allows KASAN together with
# Rust only in clang-built kernels (RUST depends on !KASAN || CC_IS_CLANG).
# bindgen then needs the libclang of the same version.
xv_kcc() {
	case $1 in
	debug) echo "LLVM=-19" ;;
	esac
}

# make for a kernel or module build of flavour $1, with its compilers.
xv_kmake() {
	local flavour=$1
	shift
	if [[ -n $(xv_kcc "$flavour") ]]; then
		LIBCLANG_PATH=/usr/lib/llvm-19/lib make $(xv_kcc "$flavour") "$@"
	else
		make "$@"
	fi
}

# The kernel build directory of a flavour (debug or release).
xv_kbuild_dir() { echo "$XV_CACHE/kernel/$(xv_kernel_version)/build-$1"; }

# checkpatch --strict over the series, less two complaints each patch that
# raises them justifies in its commit message: new files under directories
# MAINTAINERS already covers, and CamelCase Opt_ enumerators that follow the
# naming of their file.
xv_checkpatch_series() {
	"$1" --strict --quiet --ignore FILE_PATH_CHANGES,CAMELCASE "$2"
}

# virtme-ng's init mounts an empty tmpfs over these directories of the
# guest's root, so whatever a guest must read from this machine (the tree,
# the build directory, the cache) cannot live under them: a cache in
# /var/tmp would boot and then fail case by case.
xv_check_guest_paths() {
	local hidden var path
	local guest_hidden=(/dev/shm /run /var/cache /var/lib/apt /var/lib/machines /var/lib/portables
		/var/lib/private /var/lib/snapd/cookie /var/lib/sudo /var/log /var/spool/rsyslog /var/tmp)
	for var in XV_ROOT XV_BUILD XV_CACHE; do
		path=$(readlink -m "${!var}")
		for hidden in "${guest_hidden[@]}"; do
			[[ $path != "$hidden" && $path != "$hidden"/* ]] ||
				xv_die "$var=${!var}: the guest's init mounts a tmpfs over $hidden, so a guest cannot see it; pick a directory elsewhere"
		done
	done
}
