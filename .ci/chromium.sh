# Sourced by .ci/run: install (if missing) Debian's chromium for the HTML report's browser
# test (tests/test_ops_report.py).  Never fatal: without it that test skips, saying why.

install_chromium() {
  if command -v chromium >/dev/null 2>&1; then
    return 0
  fi
  echo "ci: installing chromium from the distribution's packages"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo -n"
  ($sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium) \
    >/dev/null 2>&1 || { echo "ci: could not install chromium; the browser test will skip"; return 1; }
  echo "ci: $(chromium --version 2>/dev/null | head -1)"
}
