# shellcheck shell=sh
# lib.sh: what every guest script shares (POSIX sh; bash reads it too). The controller sends it ahead of the
# script as one text (`sh -c "LIB<newline>SCRIPT" ionlab-NAME ARG…`, bash for verify.sh); a script run by hand
# (`sh install-packages.sh curl`) sources it from beside itself, unless ionlab_json is already defined. So it
# only defines things, and its last command succeeds: a script exits when sourcing it fails.

# The result goes to fd 3, or to stdout when fd 3 is not open (a script run by hand). Each script runs its
# work with fd 3 closed (`main "$@" 3>&-`), so nothing it starts keeps the result pipe open.
{ true >&3; } 2>/dev/null || exec 3>&1

# ionlab_json TEXT: the JSON string for TEXT (\, " and control characters escaped; UTF-8 passes through).
ionlab_json() {
  JSON_TEXT=$1 LC_ALL=C awk 'BEGIN {
    for (i = 1; i < 32; i++) esc[sprintf("%c", i)] = sprintf("\\u%04x", i)
    esc["\\"] = "\\\\"; esc["\""] = "\\\""; esc["\n"] = "\\n"; esc["\r"] = "\\r"; esc["\t"] = "\\t"
    s = ENVIRON["JSON_TEXT"]; out = "\""
    for (i = 1; i <= length(s); i++) { c = substr(s, i, 1); out = out ((c in esc) ? esc[c] : c) }
    print out "\""
  }'
}
