# Sourced by .ci/run: install (if missing) Debian's prometheus and prometheus-pushgateway for
# the metrics tests (tests/test_prometheus.py, tests/test_pushgateway.py).  Never fatal:
# without them those tests skip, saying why.

install_prometheus() {
  if command -v prometheus >/dev/null 2>&1 && command -v prometheus-pushgateway >/dev/null 2>&1; then
    return 0
  fi
  echo "ci: installing prometheus and prometheus-pushgateway from the distribution's packages"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo -n"
  ($sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
      --no-install-recommends prometheus prometheus-pushgateway) \
    >/dev/null 2>&1 || { echo "ci: could not install prometheus; the metrics tests will skip"; return 1; }
  echo "ci: $(prometheus --version 2>&1 | head -1)"
}
