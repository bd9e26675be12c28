# Shared by scripts/test.sh and scripts/demo.sh. Source it; it defines functions only.
# shellcheck shell=bash

# The repository root (the collection root).
sfdc_root() {
    cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd
}

# Print a labelled banner line.
sfdc_banner() {
    printf '\n==================== %s ====================\n' "$*"
}

# Find a Python 3.11 interpreter: $PYTHON, python3.11, or python3 when it is 3.11.
sfdc_find_python() {
    local cand
    for cand in "${PYTHON:-}" python3.11 python3; do
        [ -n "$cand" ] || continue
        command -v "$cand" >/dev/null 2>&1 || continue
        if "$cand" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
            command -v "$cand"
            return 0
        fi
    done
    echo "error: Python 3.11 not found (tried \$PYTHON, python3.11, python3); set PYTHON=/path/to/python3.11" >&2
    return 1
}

# Create or refresh ROOT/.venv from requirements.txt + tests/requirements.txt.
# Skips pip when the stamp file holds the hash of the requirements and the Python version.
# Runs under a lock: several runs may share a checkout.
sfdc_venv() {
    mkdir -p "$1/.tmp"
    if command -v flock >/dev/null 2>&1; then
        (flock 9 && _sfdc_venv "$@") 9>"$1/.tmp/venv.lock"
    else
        _sfdc_venv "$@"
    fi
}

_sfdc_venv() {
    local root="$1" py venv stamp want have
    venv="$root/.venv"
    stamp="$venv/.sfdc-eca-requirements.sha256"
    py="$(sfdc_find_python)" || return 1
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
        echo "creating $venv with $py"
        rm -rf "$venv"
        "$py" -m venv "$venv" || return 1
    fi
    want="$(cat "$root/requirements.txt" "$root/tests/requirements.txt" 2>/dev/null \
        | "$venv/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(sys.version.encode() + sys.stdin.buffer.read()).hexdigest())')"
    have="$(cat "$stamp" 2>/dev/null || true)"
    if [ "$want" = "$have" ]; then
        echo "venv $venv is up to date (requirements unchanged)"
        return 0
    fi
    echo "installing requirements into $venv"
    # The machine's pip config may list local indexes that lack most packages; hide that noise.
    "$venv/bin/python" -m pip install --disable-pip-version-check -q \
        -r "$root/requirements.txt" -r "$root/tests/requirements.txt" 2>&1 \
        | grep -v "^WARNING: Location '.*' is ignored: it is neither a file nor a directory"
    [ "${PIPESTATUS[0]}" -eq 0 ] || return 1
    echo "$want" > "$stamp"
}

# List the files of the working tree that belong to the project: tracked (and still present)
# plus untracked files git does not ignore. NUL separated.
sfdc_project_files() {
    local root="$1"
    if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git -C "$root" ls-files -z --cached --others --exclude-standard \
            | (cd "$root" && while IFS= read -r -d '' f; do [ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"; done)
    else
        (cd "$root" && find . -path ./.git -prune -o -path ./.venv -prune -o -path ./.tmp -prune \
            -o -path ./tests/output -prune -o -name __pycache__ -prune -o \( -type f -o -type l \) -print0 \
            | sed -z 's|^\./||')
    fi
}

# Copy the project into DEST/ansible_collections/sfdc/eca (ansible-test resolves real paths, so a
# symlink will not do). Prints the collection path.
sfdc_copy_collection() {
    local root="$1" dest="$2" coll
    coll="$dest/ansible_collections/sfdc/eca"
    mkdir -p "$coll"
    sfdc_project_files "$root" | (cd "$root" && tar --null -T - -cf -) | (cd "$coll" && tar -xf -) || return 1
    echo "$coll"
}

# Start the simulator in the background (python of .venv on PATH): sfdc_sim_start ROOT SEED STATEFILE LOGFILE.
# Sets SFDC_SIM_PID. Waits (60 s at most) for the state file to appear.
sfdc_sim_start() {
    local root="$1" seed="$2" state="$3" log="$4" i
    rm -f "$state"
    # stdout lists the orgs' admin credentials (all in the state file): keep it out of the logs.
    (cd "$root" && exec python -m eca_simulator serve --seed "$seed" --state-file "$state") \
        >/dev/null 2>"$log" </dev/null &
    SFDC_SIM_PID=$!
    for i in $(seq 1 600); do
        if [ -s "$state" ] && python -c 'import json, sys; json.load(open(sys.argv[1]))' "$state" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$SFDC_SIM_PID" 2>/dev/null; then
            echo "error: the simulator exited before writing $state; its output:" >&2
            tail -n 30 "$log" >&2
            SFDC_SIM_PID=
            return 1
        fi
        sleep 0.1
    done
    echo "error: the simulator did not write $state within 60 s; its output:" >&2
    tail -n 30 "$log" >&2
    return 1
}

# Stop the simulator started by sfdc_sim_start (by its pid only).
sfdc_sim_stop() {
    local i
    if [ -n "${SFDC_SIM_PID:-}" ] && kill -0 "$SFDC_SIM_PID" 2>/dev/null; then
        kill -TERM "$SFDC_SIM_PID" 2>/dev/null
        for i in $(seq 1 50); do
            kill -0 "$SFDC_SIM_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SFDC_SIM_PID" 2>/dev/null || true
        wait "$SFDC_SIM_PID" 2>/dev/null || true
    fi
    SFDC_SIM_PID=
}
