#!/usr/bin/env bash
# One-command set-up of a development machine (Debian 12, Python 3.11, no ROS install):
#   Debian packages -> .venv -> pinned Python packages (ROS 2 Kilted wheels, torch, ...) ->
#   folk_msgs built into the venv -> folk_model and folk_ros installed editable -> folk_ros
#   registered in the venv's ament index (ros2 launch / ros2 run find it).
# Idempotent: each step records a hash of its inputs and is skipped when they did not change,
# so a second run takes seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FOLK_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
STAMPS="$VENV/.folk-setup"
cd "$ROOT"

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

# Run step NAME only when the hash of its inputs changed since the last successful run.
step_needed() { [[ "$(cat "$STAMPS/$1" 2>/dev/null)" != "$2" ]]; }
step_done() { mkdir -p "$STAMPS" && echo "$2" > "$STAMPS/$1"; }

# 1. Debian packages: furniture models for the synthetic scenes, libusb for open3d.
APT_PACKAGES=(sweethome3d-furniture libusb-1.0-0 cmake g++)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. The virtual environment.
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade "pip>=24" >/dev/null
fi
PIP=("$VENV/bin/pip" install -q --disable-pip-version-check)

# 3. Pinned Python packages (one place: requirements/).
h=$(hash_of requirements/base.txt requirements/lock.txt)
if step_needed pip "$h"; then
  log "installing Python packages (torch, ROS 2 wheels, ...); first run takes a few minutes"
  "${PIP[@]}" -r requirements/base.txt -c requirements/lock.txt
  step_done pip "$h"
fi

# 4. folk_msgs, built with plain cmake and installed into the venv prefix so that the venv's
#    rclpy imports it without sourcing anything.
h=$(hash_of folk_msgs/CMakeLists.txt folk_msgs/package.xml folk_msgs/msg/* folk_msgs/srv/* \
    requirements/lock.txt)
if step_needed folk_msgs "$h" || ! "$VENV/bin/python" -c "import folk_msgs.srv" 2>/dev/null; then
  log "building folk_msgs"
  BUILD="$ROOT/build/folk_msgs_venv"
  rm -rf "$BUILD" && mkdir -p "$BUILD"
  (
    # shellcheck disable=SC1091
    source "$VENV/bin/activate"
    cmake -S folk_msgs -B "$BUILD" -DCMAKE_INSTALL_PREFIX="$VENV" \
      -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF >"$BUILD/cmake.log" 2>&1 \
      || { cat "$BUILD/cmake.log"; exit 1; }
    cmake --build "$BUILD" -j "$(nproc)" >"$BUILD/build.log" 2>&1 \
      || { tail -50 "$BUILD/build.log"; exit 1; }
    cmake --install "$BUILD" >"$BUILD/install.log" 2>&1
  )
  "$VENV/bin/python" -c "import folk_msgs.msg, folk_msgs.srv"
  step_done folk_msgs "$h"
fi

# 5. Our own packages, editable.
h=$(hash_of folk_model/pyproject.toml folk_ros/setup.py folk_ros/package.xml scripts/setup.sh)
if step_needed editable "$h"; then
  log "installing folk_model and folk_ros (editable)"
  # compat mode puts the project folders on sys.path (a .pth), so the top-level folders
  # folk_model/ and folk_ros/ of a checkout never shadow the packages as namespace packages.
  "${PIP[@]}" --no-deps --no-build-isolation --config-settings editable_mode=compat \
    -e folk_model -e folk_ros
  step_done editable "$h"
fi

# 6. Register folk_ros in the venv's ament index the way a colcon install does, so that where
#    the official tools (ros2cli, launch_ros) are present `ros2 launch folk_ros
#    segment.launch.py` and `ros2 run folk_ros folk_node` find it: the package marker, the
#    share/ files (links into the checkout, like the editable install) and the executables
#    under lib/folk_ros/. activate exports AMENT_PREFIX_PATH (the index's search path), as
#    `source install/setup.bash` does after a colcon build. Cheap and idempotent: every run.
register_folk_ros() {
  local share="$VENV/share/folk_ros" lib="$VENV/lib/folk_ros" f
  mkdir -p "$VENV/share/ament_index/resource_index/packages" "$share" "$lib"
  : > "$VENV/share/ament_index/resource_index/packages/folk_ros"
  ln -sfn "$ROOT/folk_ros/package.xml" "$share/package.xml"
  ln -sfn "$ROOT/folk_ros/launch" "$share/launch"
  ln -sfn "$ROOT/folk_ros/config" "$share/config"
  for f in folk_node folk_player; do
    [[ -x "$VENV/bin/$f" ]] || { echo "setup: $VENV/bin/$f missing" >&2; exit 1; }
    ln -sfn "$VENV/bin/$f" "$lib/$f"
  done
  if ! grep -q "folk: ament index" "$VENV/bin/activate"; then
    cat >> "$VENV/bin/activate" <<'ACTIVATE'
# folk: ament index of this venv (ros2 launch / ros2 run find folk_ros, folk_msgs here)
case ":${AMENT_PREFIX_PATH:-}:" in
  *":$VIRTUAL_ENV:"*) ;;
  *) export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;;
esac
ACTIVATE
  fi
}
register_folk_ros

"$VENV/bin/python" -c "import rclpy, folk_msgs.msg, folk_msgs.srv, torch, open_clip, \
spconv.pytorch, open3d, folk_model, folk_ros" \
  || { echo "setup: the environment does not import; see the messages above" >&2; exit 1; }
log "ready: source $VENV/bin/activate  (or use make test / make demo)"
