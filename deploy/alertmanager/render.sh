#!/bin/sh
# Writes the Alertmanager config from its template and the environment, then runs
# the command that follows (Alertmanager itself):
#     render.sh TEMPLATE OUTPUT [COMMAND ARG...]
# Alertmanager reads no environment variables and 0.25 (Debian's, which the tests
# run) has no url_file/bot_token_file, so the receivers' addresses and secrets are
# put in here, at start, from the container's environment; none is in the repository.
# The template's two marks (comment lines are copied as they are):
#   ${NAME}        the value of NAME; rendering fails if NAME is unset or empty. Put
#                  it inside double quotes: `"` and `\` are escaped for YAML, and a
#                  value with a line break is refused.
#   `# if NAME`    at the end of a line: the line is kept only when NAME is set and
#                  not empty (so a receiver's channel exists only when configured).
# POSIX sh and awk only: the prom/alertmanager image has busybox, Debian has mawk.
set -eu
if [ "$#" -lt 2 ]; then
  echo "usage: $0 TEMPLATE OUTPUT [COMMAND ARG...]" >&2
  exit 2
fi
template=$1 output=$2
shift 2
trap 'rm -f "$output.tmp"' EXIT
awk '
function fail(message) {
  print "render.sh: " FILENAME ":" FNR ": " message > "/dev/stderr"
  failed = 1
  exit 1
}
function quoted(name, value,    i, c, out) {
  out = ""
  for (i = 1; i <= length(value); i++) {
    c = substr(value, i, 1)
    if (c == "\n" || c == "\r") fail(name " holds a line break")
    if (c == "\\" || c == "\"") out = out "\\"
    out = out c
  }
  return out
}
/^[ \t]*#/ { print; next }  # a comment line stays as written
{
  line = $0
  if (match(line, /[ \t]*# if [A-Za-z_][A-Za-z0-9_]*[ \t]*$/)) {
    condition = substr(line, RSTART, RLENGTH)
    sub(/^[ \t]*# if /, "", condition)
    sub(/[ \t]*$/, "", condition)
    line = substr(line, 1, RSTART - 1)
    if (ENVIRON[condition] == "") next
  }
  rendered = ""
  while (match(line, /\$\{[A-Za-z_][A-Za-z0-9_]*\}/)) {
    name = substr(line, RSTART + 2, RLENGTH - 3)
    if (ENVIRON[name] == "") fail(name " is not set")
    rendered = rendered substr(line, 1, RSTART - 1) quoted(name, ENVIRON[name])
    line = substr(line, RSTART + RLENGTH)
  }
  print rendered line
}
' "$template" > "$output.tmp"
mv "$output.tmp" "$output"
trap - EXIT
if [ "$#" -gt 0 ]; then
  exec "$@"
fi
