#!/usr/bin/env bash
# Run the whole test suite of sfdc.eca: bash scripts/test.sh [--only S[,S]] [--skip S[,S]] [--keep]
# Every stage runs (a failure does not stop the others); the run ends with a table of the stages
# and a last line "N passed, N failed". Exit status 0 only when no stage failed.
# Details: docs/testing.md.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/common.sh
. "$ROOT/scripts/lib/common.sh"
# shellcheck source=scripts/lib/matrix.sh
. "$ROOT/scripts/lib/matrix.sh"

ALL_STAGES=(simulator unit sanity integration e2e safety live browser lint build changelog docs matrix)
declare -A STAGE_DESC=(
    [simulator]="pytest tests/simulator (the simulator's own tests)"
    [unit]="pytest tests/unit (plugin units)"
    [sanity]="ansible-test sanity --venv --python 3.11 (no ignore file)"
    [integration]="ansible-test integration against the simulator (in-process, then SFDC_ECA_IN_PROCESS=false)"
    [e2e]="pytest tests/e2e (role, playbooks, AWX runner)"
    [safety]="pytest tests/safety (crash, fault, secret-leak and hostile-input suites)"
    [live]="pytest tests/live: live integrations while the fleet rotates under every fault (SFDC_LIVE_ORGS, default 100)"
    [browser]="pytest tests/browser (report.html with 10,000 rows in headless Chromium)"
    [lint]="ansible-lint --profile production"
    [build]="ansible-galaxy collection build + tarball content check"
    [changelog]="antsibull-changelog lint"
    [docs]="antsibull-docs lint-collection-docs --plugin-docs (as docs sites build them)"
    [matrix]="each ansible-core of scripts/lib/matrix.txt: unit, doc, integration x2, e2e, sanity"
)

usage() {
    cat <<EOF
usage: bash scripts/test.sh [--only STAGE[,STAGE]] [--skip STAGE[,STAGE]] [--keep] [-- PYTEST_ARGS]

Stages, in order: ${ALL_STAGES[*]}
EOF
    for s in "${ALL_STAGES[@]}"; do printf '  %-12s %s\n' "$s" "${STAGE_DESC[$s]}"; done
    cat <<EOF

--keep          keep the temporary collection copy (its path is printed)
-- ARGS         extra arguments for the pytest stages (e.g. -- -k rotate -x)
Environment:    SFDC_TEST_XDIST=0 runs pytest without -n auto; SFDC_TEST_PARALLEL=0 runs the two
                integration runs one after the other.
                SANITY_ARGS="--test pylint" / INTEGRATION_ARGS="eca_token -v": extra ansible-test arguments.
                SFDC_MATRIX=2.16,2.21 / SFDC_MATRIX_CHECKS=unit,doc / SFDC_MATRIX_JOBS=1: some of the matrix.
Logs:           .tmp/test-logs/latest/<stage>.log (one folder per run; ansible-test's output in it too)
EOF
}

ONLY=""
SKIP=""
KEEP=0
PYTEST_EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --only) ONLY="${2:-}"; shift 2 ;;
        --only=*) ONLY="${1#*=}"; shift ;;
        --skip) SKIP="${2:-}"; shift 2 ;;
        --skip=*) SKIP="${1#*=}"; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; PYTEST_EXTRA=("$@"); break ;;
        *) echo "error: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done

is_stage() { local s; for s in "${ALL_STAGES[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
in_list() { case ",$2," in *",$1,"*) return 0 ;; esac; return 1; }
for s in ${ONLY//,/ } ${SKIP//,/ }; do
    is_stage "$s" || { echo "error: unknown stage '$s'; stages are: ${ALL_STAGES[*]}" >&2; exit 2; }
done
SELECTED=()
for s in "${ALL_STAGES[@]}"; do
    if [ -n "$ONLY" ] && ! in_list "$s" "$ONLY"; then continue; fi
    if [ -n "$SKIP" ] && in_list "$s" "$SKIP"; then continue; fi
    SELECTED+=("$s")
done
[ ${#SELECTED[@]} -gt 0 ] || { echo "error: no stage selected" >&2; exit 2; }

sfdc_banner "setup: .venv"
sfdc_venv "$ROOT" || { echo "error: could not set up $ROOT/.venv" >&2; echo "0 passed, 1 failed"; exit 1; }
export VIRTUAL_ENV="$ROOT/.venv"
export PATH="$ROOT/.venv/bin:$PATH"
export PYTHONDONTWRITEBYTECODE=1
if [ -n "${CI:-}" ]; then export ANSIBLE_NOCOLOR=1 PY_COLORS=0; fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sfdc-eca-test.XXXXXX")"
# One log folder per run (several runs may share a checkout); "latest" points at the newest.
LOGROOT="$ROOT/.tmp/test-logs"
LOGDIR="$LOGROOT/run-$(date -u +%Y%m%dT%H%M%SZ)-$$"
mkdir -p "$LOGDIR"
ln -sfn "$(basename "$LOGDIR")" "$LOGROOT/latest"
# keep the 10 newest runs
ls -1d "$LOGROOT"/run-* 2>/dev/null | sort | head -n -10 | while IFS= read -r old; do rm -rf "$old"; done
LOGREL="${LOGDIR#"$ROOT"/}"

cleanup() {
    local pidfile
    for pidfile in "$WORK"/sim-*.pid; do
        [ -f "$pidfile" ] || continue
        SFDC_SIM_PID="$(cat "$pidfile")" sfdc_sim_stop
    done
    if [ -d "$COLL/tests/output" ]; then
        cp -a "$COLL/tests/output" "$LOGDIR/ansible-test-output" 2>/dev/null || true
    fi
    if [ "$KEEP" = 1 ]; then
        echo "kept the collection copy: $COLL"
    else
        rm -rf "$WORK"
    fi
}
COLL="$WORK/ansible_collections/sfdc/eca"
trap cleanup EXIT
trap 'exit 130' INT TERM

sfdc_banner "setup: collection copy"
sfdc_copy_collection "$ROOT" "$WORK" >/dev/null || { echo "error: could not copy the collection to $COLL" >&2; echo "0 passed, 1 failed"; exit 1; }
echo "collection copy: $COLL ($(find "$COLL" -type f | wc -l) files)"
# Tests import ansible_collections.sfdc.eca.* and eca_simulator from the copy; ansible finds the collection there.
export PYTHONPATH="$WORK:$COLL${PYTHONPATH:+:$PYTHONPATH}"
export ANSIBLE_COLLECTIONS_PATH="$WORK"

SKIPPED=77

# run_pytest DIR REQUIRED: with REQUIRED=1 a missing DIR fails, else it skips the stage.
# A DIR that exists but holds no tests (pytest exit 5) always fails.
run_pytest() {
    local dir="$1" required="$2" rc args=()
    if [ ! -d "$COLL/$dir" ]; then
        if [ "$required" = 1 ]; then echo "FAIL: $dir does not exist"; return 1; fi
        echo "NOTE: $dir does not exist yet: stage skipped"; return $SKIPPED
    fi
    if [ "${SFDC_TEST_XDIST:-1}" != 0 ] && python -c 'import xdist' 2>/dev/null; then
        args+=(-n auto)
    fi
    (cd "$COLL" && python -m pytest "$dir" -p no:cacheprovider -ra "${args[@]}" "${PYTEST_EXTRA[@]}")
    rc=$?
    if [ $rc -eq 5 ]; then
        echo "FAIL: no tests collected in $dir"; return 1
    fi
    return $rc
}

stage_simulator() { run_pytest tests/simulator 1; }
stage_unit() { run_pytest tests/unit 1; }
stage_e2e() { run_pytest tests/e2e 0; }
stage_safety() { run_pytest tests/safety 0; }
# One combined run (every fault family, SIGKILLs, reruns) plus the suite's own instruments; the summary JSON
# goes to the log folder. The families alone: python -m pytest tests/live -k hook (docs/safety.md).
stage_live() {
    [ -d "$COLL/tests/live" ] || { echo "FAIL: tests/live does not exist"; return 1; }
    (cd "$COLL" && SFDC_LIVE_LOG_DIR="$LOGDIR" SFDC_LIVE_ORGS="${SFDC_LIVE_ORGS:-100}" python -m pytest \
        tests/live/test_live_harness.py "tests/live/test_live_rotation.py::test_live_rotation[all]" \
        -p no:cacheprovider -ra -n 0 "${PYTEST_EXTRA[@]}")
}

# Debian's chromium, installed when missing (CI runs as root with the package registry); no browser download.
stage_browser() {
    local chromium="${SFDC_CHROMIUM:-/usr/bin/chromium}"
    if [ ! -x "$chromium" ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "installing Debian's chromium (log: $LOGREL/browser-apt.log)"
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
                >"$LOGDIR/browser-apt.log" 2>&1
        fi
        if [ ! -x "$chromium" ]; then
            echo "FAIL: no Chromium at $chromium: install Debian's package (apt-get install chromium, as root)"
            echo "      or set SFDC_CHROMIUM to a Chromium binary; see $LOGREL/browser-apt.log if an install was tried"
            return 1
        fi
    fi
    echo "chromium: $("$chromium" --version 2>/dev/null || echo "$chromium")"
    # one browser for the whole stage: no xdist
    SFDC_CHROMIUM="$chromium" SFDC_TEST_LOG_DIR="$LOGDIR" SFDC_TEST_XDIST=0 run_pytest tests/browser 1
    local rc=$?
    echo "screenshots and browser-metrics.json: $LOGREL/"
    return $rc
}

stage_sanity() {
    local ignores
    ignores="$(find "$COLL/tests/sanity" -name 'ignore-*.txt' 2>/dev/null)"
    if [ -n "$ignores" ]; then
        echo "FAIL: sanity ignore files are not allowed here: fix the finding instead:"
        echo "$ignores" | sed "s|$COLL/||"
        return 1
    fi
    sanity_pip_bootstrap 3.11 || return 1
    # shellcheck disable=SC2086
    (cd "$COLL" && ansible-test sanity --venv --python 3.11 --color no ${SANITY_ARGS:-})
}

# integration_run NAME WORKDIR [ENV=VALUE...]: one ansible-test integration run in the collection
# copy under WORKDIR, against a simulator of its own (started here, stopped when the run ends).
integration_run() {
    local name="$1" work="$2" coll="$2/ansible_collections/sfdc/eca" start
    shift 2
    start=$(date +%s)
    (
        state="$work/sim-$name.json"
        simlog="$LOGDIR/integration-$name-simulator.log"
        SFDC_SIM_PID=
        trap 'sfdc_sim_stop' EXIT
        sfdc_sim_start "$coll" "$coll/tests/integration/sim_seed.yml" "$state" "$simlog" || exit 1
        echo "$SFDC_SIM_PID" > "$WORK/sim-$name.pid"
        echo "simulator pid $SFDC_SIM_PID (log ${simlog#"$ROOT"/})"
        python "$ROOT/scripts/lib/integration_config.py" "$state" "$coll/tests/integration/integration_config.yml" \
            || { echo "FAIL: could not write integration_config.yml"; exit 1; }
        # shellcheck disable=SC2086
        cd "$coll" && env "$@" ansible-test integration --local --python "${SFDC_TEST_PYTHON:-3.11}" --color no ${INTEGRATION_ARGS:-}
    )
    local rc=$?
    echo "integration run '$name': exit $rc, $(( $(date +%s) - start )) s"
    return $rc
}

ansible_test_ssh_key() {
    local key="$HOME/.ansible/test/id_rsa"
    mkdir -p "$(dirname "$key")"
    (
        flock 9 2>/dev/null || true
        if [ ! -f "$key" ] || [ ! -f "$key.pub" ]; then
            rm -f "$key" "$key.pub"
            ssh-keygen -m PEM -q -t rsa -N '' -f "$key" </dev/null >/dev/null || exit 1
            # as ansible-test does: paramiko wants the RSA PEM header
            sed -i -E 's/(BEGIN|END) PRIVATE KEY/\1 RSA PRIVATE KEY/' "$key"
        fi
    ) 9>"$HOME/.ansible/test/.id_rsa.lock"
}

stage_integration() {
    local rc1 rc2 f work2="$WORK/module-exec" parallel=1 pid1 pid2
    if ! ls -d "$COLL"/tests/integration/targets/*/ >/dev/null 2>&1; then
        echo "FAIL: no integration targets in tests/integration/targets/"; return 1
    fi
    [ -f "$COLL/tests/integration/sim_seed.yml" ] || { echo "FAIL: tests/integration/sim_seed.yml (the simulator seed for integration) is missing"; return 1; }
    [ -d "$COLL/eca_simulator" ] || { echo "FAIL: eca_simulator/ is missing"; return 1; }

    # The second run needs SFDC_ECA_IN_PROCESS=false in ansible-playbook's environment, but
    # ansible-test passes only a fixed set of variables; the target alias env/set/NAME/VALUE is its
    # way to set one. Add it in a second copy, so the two runs can go side by side.
    rm -rf "$work2"
    mkdir -p "$work2"
    cp -a "$WORK/ansible_collections" "$work2/"
    rm -rf "$work2/ansible_collections/sfdc/eca/tests/output"
    for f in "$work2"/ansible_collections/sfdc/eca/tests/integration/targets/*/; do
        printf '\nenv/set/SFDC_ECA_IN_PROCESS/false\n' >> "$f/aliases"
    done

    if [ "${SFDC_TEST_PARALLEL:-1}" = 0 ] || [ "$(nproc 2>/dev/null || echo 1)" -lt 2 ]; then parallel=0; fi
    # Each ansible-test run creates ~/.ansible/test/id_rsa when it is missing; two at once collide
    # (ssh-keygen asks "Overwrite (y/n)?"). Make it first, the way ansible-test does.
    ansible_test_ssh_key || { echo "FAIL: could not create ~/.ansible/test/id_rsa"; return 1; }
    if [ $parallel = 1 ]; then
        echo "running both integration runs side by side; their output follows when both are done"
        integration_run in-process "$WORK" >"$LOGDIR/integration-in-process.log" 2>&1 &
        pid1=$!
        integration_run module-exec "$work2" SFDC_ECA_IN_PROCESS=false >"$LOGDIR/integration-module-exec.log" 2>&1 &
        pid2=$!
        wait $pid1; rc1=$?
        wait $pid2; rc2=$?
        sfdc_banner "integration 1/2: default (in-process action plugins)"
        cat "$LOGDIR/integration-in-process.log"
        sfdc_banner "integration 2/2: SFDC_ECA_IN_PROCESS=false (module execution)"
        cat "$LOGDIR/integration-module-exec.log"
    else
        sfdc_banner "integration 1/2: default (in-process action plugins)"
        integration_run in-process "$WORK"; rc1=$?
        sfdc_banner "integration 2/2: SFDC_ECA_IN_PROCESS=false (module execution)"
        integration_run module-exec "$work2" SFDC_ECA_IN_PROCESS=false; rc2=$?
    fi
    if [ -d "$work2/ansible_collections/sfdc/eca/tests/output" ]; then
        cp -a "$work2/ansible_collections/sfdc/eca/tests/output" "$LOGDIR/ansible-test-output-module-exec" 2>/dev/null || true
    fi
    echo "integration: default exit $rc1, SFDC_ECA_IN_PROCESS=false exit $rc2"
    [ $rc1 -eq 0 ] && [ $rc2 -eq 0 ]
}

stage_lint() {
    local color=()
    if [ -n "${CI:-}" ] || [ ! -t 1 ]; then color=(--nocolor); fi
    # Integration targets depend on each other (meta dependencies: setup_sim), as ansible-test
    # resolves them from the targets folder; give syntax-check the same roles path.
    (cd "$COLL" && ANSIBLE_ROLES_PATH="$COLL/tests/integration/targets" ansible-lint --profile production --offline "${color[@]}")
}

stage_build() {
    local out="$WORK/build" tarball
    rm -rf "$out"
    mkdir -p "$out"
    (cd "$COLL" && ansible-galaxy collection build --output-path "$out") || return 1
    tarball="$(ls "$out"/*.tar.gz 2>/dev/null | head -n 1)"
    [ -n "$tarball" ] || { echo "FAIL: no tarball in $out"; return 1; }
    echo "size: $(du -h "$tarball" | cut -f1)"
    python "$ROOT/scripts/lib/check_tarball.py" "$tarball"
}

stage_changelog() {
    (cd "$COLL" && antsibull-changelog lint && antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml)
}

stage_docs() {
    (cd "$COLL" && antsibull-docs lint-collection-docs --plugin-docs .)
}

declare -A RESULT TIME
failed_stages=()
for s in "${SELECTED[@]}"; do
    sfdc_banner "stage $s: ${STAGE_DESC[$s]}"
    start=$(date +%s)
    ( "stage_$s" ) 2>&1 | tee "$LOGDIR/$s.log"
    rc=${PIPESTATUS[0]}
    TIME[$s]=$(( $(date +%s) - start ))
    if [ "$rc" -eq 0 ]; then
        RESULT[$s]=PASS
    elif [ "$rc" -eq $SKIPPED ]; then
        RESULT[$s]=SKIP
    else
        RESULT[$s]=FAIL
        failed_stages+=("$s")
    fi
    echo "stage $s: ${RESULT[$s]} (exit $rc, ${TIME[$s]} s)"
done

# What broke: the error lines of a failed stage's log (pytest, ansible-test, ansible), else its tail.
BROKE_RE='^(ERROR|FATAL|FAILED|FAIL)[: ]|^E +(assert |[A-Za-z.]*(Error|Exception)\b)|^fatal: \[|^[a-z-]+\[[a-z-]+\]: |^[^ ].*(Error|Exception): '
for s in "${failed_stages[@]}"; do
    log="$LOGDIR/$s.log"
    # drop ansible failures the play ignored ("...ignoring" on the next line)
    broke="$(awk '/^\.\.\.ignoring/ { held = ""; next } { if (held != "") print held; held = $0 } END { if (held != "") print held }' "$log" \
        | grep -E "$BROKE_RE" | grep -v '^FATAL: Command ' | head -n 60)"
    if [ -n "$broke" ]; then
        sfdc_banner "what broke in stage $s (error lines of $LOGREL/$s.log)"
        echo "$broke"
    else
        sfdc_banner "what broke in stage $s (last 40 lines of $LOGREL/$s.log)"
        tail -n 40 "$log"
    fi
done

sfdc_banner "summary"
npass=0
nfail=0
total=0
printf '%-12s %-5s %6s\n' stage result time
for s in "${SELECTED[@]}"; do
    printf '%-12s %-5s %5ss\n' "$s" "${RESULT[$s]}" "${TIME[$s]}"
    total=$(( total + TIME[$s] ))
    case "${RESULT[$s]}" in PASS) npass=$((npass + 1)) ;; FAIL) nfail=$((nfail + 1)) ;; esac
done
for s in "${SELECTED[@]}"; do
    [ "${RESULT[$s]}" = SKIP ] && echo "note: stage $s was skipped (see its log)"
done
# Test folders no stage runs would pass silently: say so.
for d in "$COLL"/tests/*/; do
    case "$(basename "$d")" in simulator|unit|e2e|safety|live|browser|integration|sanity|output|__pycache__) continue ;; esac
    if find "$d" -name 'test_*.py' | grep -q .; then
        echo "WARNING: tests/$(basename "$d")/ has tests that no stage of scripts/test.sh runs"
    fi
done
echo "total ${total}s; logs in $LOGREL/ (also .tmp/test-logs/latest/)"
echo "$npass passed, $nfail failed"
[ "$nfail" -eq 0 ]
