#!/usr/bin/env bash
# Installs everything Stunt needs on a fresh Debian 12 machine, idempotently: Debian packages
# (compilers, CMake, CLI11, nlohmann/json, spdlog, yaml-cpp, GoogleTest, Google Benchmark,
# ccache, clang + libFuzzer, zlib) and a Python virtual environment in .venv with the pinned
# LibTorch wheel and the reference libraries the Python checks compare against.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.11.0
APT_PACKAGES=(build-essential cmake ninja-build ccache git pkg-config python3-venv
  libcli11-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libyaml-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev clang-14 libclang-rt-14-dev libgloo-dev zlib1g-dev)

missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$package")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$PYTHON" -m venv .venv
fi
# One marker per requirements content: pip runs only when the pins change.
stamp=".venv/.stunt-requirements-$(cat scripts/requirements.txt scripts/requirements-nodeps.txt scripts/requirements-legacy.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing Python packages (torch==${TORCH_VERSION} and test tools)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r scripts/requirements.txt
  .venv/bin/python -m pip install -q --no-deps -r scripts/requirements-nodeps.txt
  rm -rf .venv/legacy-compressed-tensors
  .venv/bin/python -m pip install -q --no-deps --target .venv/legacy-compressed-tensors \
    -r scripts/requirements-legacy.txt
  rm -f .venv/.stunt-requirements-*
  touch "$stamp"
fi
.venv/bin/python -c "import torch; assert torch.__version__.startswith('${TORCH_VERSION}'), torch.__version__"
echo "bootstrap: ready (torch $(.venv/bin/python -c 'import torch; print(torch.__version__)'))"
