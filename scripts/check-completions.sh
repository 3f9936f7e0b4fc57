#!/usr/bin/env bash
# Checks the shell completions swift-argument-parser generates for ionlab (`ionlab
# --generate-completion-script bash|zsh|fish`) by using them: each shell, with the script loaded the way the
# README says to install it, must complete `ionlab vm s` to the vm subcommands that start with s, and
# `ionlab exec --t` to exec's options that start with --t. zsh completes on a pseudo-terminal (zsh/zpty),
# as at a prompt. Prints one line per shell; exits 1 on the first that fails.
#   scripts/check-completions.sh [IONLAB]    (default: the debug build)
set -euo pipefail
cd "$(dirname "$0")/.."
ionlab=${1:-$(swift build --show-bin-path)/ionlab}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "check-completions: $*" >&2; exit 1; }
expect() {  # SHELL WHAT OUTPUT WORDS...
  local shell=$1 what=$2 output=$3 word
  shift 3
  for word in "$@"; do
    grep -qw -- "$word" <<<"$output" || fail "$shell: completing '$what' did not offer $word; it offered: $(tr '\n' ' ' <<<"$output" | cut -c1-300)"
  done
}
vm_s=(snapshot start stop suspend)
exec_t=(--timeout --tty)

"$ionlab" --generate-completion-script bash >"$work/ionlab.bash"
bash_complete() {  # the words of a command line, the last one being completed
  bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
           _ionlab ionlab "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"; printf "%s\n" "${COMPREPLY[@]}"' \
    _ "$work/ionlab.bash" "$@"
}
expect bash "ionlab vm s" "$(bash_complete ionlab vm s)" "${vm_s[@]}"
expect bash "ionlab exec --t" "$(bash_complete ionlab exec --t)" "${exec_t[@]}"
echo "check-completions: bash completes subcommands and options"

"$ionlab" --generate-completion-script fish >"$work/ionlab.fish"
fish_complete() { fish --no-config -c "source $work/ionlab.fish; complete -C '$1'" | cut -f1; }
expect fish "ionlab vm s" "$(fish_complete "ionlab vm s")" "${vm_s[@]}"
expect fish "ionlab exec --t" "$(fish_complete "ionlab exec --t")" "${exec_t[@]}"
echo "check-completions: fish completes subcommands and options"

mkdir -p "$work/zsh"
"$ionlab" --generate-completion-script zsh >"$work/zsh/_ionlab"
zsh_complete() {  # LINE WORDS...: types the line and a tab at an interactive zsh; prints what the screen
  # shows once every word is on it (or after 20 s)
  PATH="$(dirname "$ionlab"):$PATH" timeout 30 zsh -f -c '
    zmodload zsh/zpty
    dir=$1 line=$2; shift 2
    zpty z zsh -f -i
    zpty -w z "PS1=\"> \"; fpath=($dir \$fpath); autoload -Uz compinit; compinit -u -D"
    zpty -w -n z "$line"$'"'"'\t'"'"'
    shown="" deadline=$((SECONDS + 20))
    while (( SECONDS < deadline )); do
      zpty -r -t z chunk && shown+=$chunk || sleep 0.2
      missing=0
      for word in "$@"; do [[ $shown == *"$word"* ]] || missing=1; done
      (( missing )) || break
    done
    print -r -- "$shown"
    zpty -d z' _ "$work/zsh" "$@" | tr -d '\r' | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g'  # without the terminal's escapes
}
expect zsh "ionlab vm s" "$(zsh_complete "ionlab vm s" "${vm_s[@]}")" "${vm_s[@]}"
expect zsh "ionlab exec --t" "$(zsh_complete "ionlab exec --t" "${exec_t[@]}")" "${exec_t[@]}"
echo "check-completions: zsh completes subcommands and options"
