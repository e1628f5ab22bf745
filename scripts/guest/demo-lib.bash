# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# Sourced by the demos: show_as PROMPT COMMAND... prints the command as an
# operator would type it (an argument with blanks or shell characters in
# quotes), then runs it.

show_as() {
	local prompt=$1 arg line=
	shift
	for arg in "$@"; do
		if [[ $arg =~ ^[A-Za-z0-9_./:=,+@%-]+$ ]]; then
			line+=" $arg"
		elif [[ $arg == *\'* && $arg != *[\"\$\`\\]* ]]; then
			line+=" \"$arg\""
		else
			line+=" '${arg//\'/\'\\\'\'}'"
		fi
	done
	printf '\n%s%s\n' "$prompt" "$line"
	"$@"
}
