#!/usr/bin/env bash
# get-cpython-tests.sh PYTHON DEST
#
# Debian's python3.X packages (what scripts/get-python.sh installs) leave out
# CPython's own test package. The conformance suites in tests/conformance need
# it, so this fetches Debian's libpython3.X-testsuite of exactly the
# interpreter's Debian version and unpacks its `test` package under DEST.
# Prints DEST's library directory (to put on sys.path) on success.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 PYTHON DEST" >&2; exit 2; }
PY=$1; DEST=${2%/}
MINOR=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
LIB=$DEST/usr/lib/python$MINOR
if [ -f "$LIB/test/test_grammar.py" ]; then echo "$LIB"; exit 0; fi
UPSTREAM=$("$PY" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
MIRROR=$( { grep -h "^URIs:" /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' || true; grep -h "^deb " /etc/apt/sources.list 2>/dev/null | awk '{print $2}' || true; } | grep -v -e security | head -1)
STATE=$DEST/.apt
mkdir -p "$STATE/lists/partial" "$STATE/cache/archives/partial" "$STATE/empty"
: > "$STATE/status"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
SIGNED=""; [ -f "$KEYRING" ] && SIGNED="[signed-by=$KEYRING] "
for s in ${GET_PYTHON_SUITES:-trixie forky sid}; do echo "deb $SIGNED$MIRROR $s main"; done > "$STATE/sources.list"
APT=(-o "Dir::Etc::sourcelist=$STATE/sources.list" -o "Dir::Etc::sourceparts=$STATE/empty"
     -o "Dir::State::Lists=$STATE/lists" -o "Dir::Cache=$STATE/cache" -o "Dir::State::status=$STATE/status"
     -o "Acquire::Languages=none" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root"
     -o "Acquire::Check-Valid-Until=false" -o "Acquire::Check-Date=false")
apt-get "${APT[@]}" update -q >/dev/null
# the Debian revision of the testsuite built from the interpreter's upstream version
VER=$(apt-cache "${APT[@]}" madison "libpython$MINOR-testsuite" | awk -F'|' '{gsub(/ /,"",$2); print $2}' \
      | grep "^$UPSTREAM-" | sort -V | tail -1 || true)
[ -n "$VER" ] || { echo "get-cpython-tests: no libpython$MINOR-testsuite for $UPSTREAM in the archive" >&2; exit 1; }
(cd "$STATE/cache" && apt-get "${APT[@]}" download "libpython$MINOR-testsuite=$VER" >/dev/null)
dpkg-deb -x "$STATE"/cache/libpython"$MINOR"-testsuite_*.deb "$DEST"
[ -f "$LIB/test/test_grammar.py" ] || { echo "get-cpython-tests: no test package in the download" >&2; exit 1; }
echo "$LIB"
