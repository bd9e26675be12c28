# The `matrix` stage of scripts/test.sh: every ansible-core release of scripts/lib/matrix.txt, each in
# a cached virtual environment of its own on the Python the list names. Sourced by scripts/test.sh,
# whose ROOT, COLL, WORK, LOGDIR, SKIPPED, integration_run and ansible_test_ssh_key it uses.
# shellcheck shell=bash

MATRIX_FILE="$ROOT/scripts/lib/matrix.txt"
MATRIX_REQUIREMENTS="$ROOT/scripts/lib/matrix-requirements.txt"
# Checks run on each release, in this order (SFDC_MATRIX_CHECKS selects some).
MATRIX_CHECKS=(unit doc integration integration-module e2e sanity)
# The e2e check: one fleet rotation through playbooks/rotate.yml, the role's rescue of failed tasks-file
# steps (it reads ansible_failed_task), and the parity of the in-process actions with the modules and
# vault-encrypted inventory values (what plugin_utils/_compat.py and _rotation.plain keep equal on each release).
MATRIX_E2E=(tests/e2e/test_rotation_fleet.py::test_fleet_rotation tests/e2e/test_inprocess_parity.py
    tests/e2e/test_core_vaulted_variables.py
    tests/e2e/test_rotation_batch_task.py::test_a_failed_step_fails_its_consumer_only_and_every_later_step_runs_once
    tests/e2e/test_rotation_batch_task.py::test_a_tasks_file_that_cannot_be_loaded_fails_its_org_without_a_promotion)
# plugins/<folder> -> ansible-doc plugin type (roles are checked too)
declare -A MATRIX_DOC_TYPES=([modules]=module [filter]=filter [test]=test [lookup]=lookup [callback]=callback
    [inventory]=inventory [connection]=connection [become]=become [cache]=cache [vars]=vars [strategy]=strategy)

# matrix_releases: "CORE PYTHON" lines of matrix.txt; SFDC_MATRIX=2.16,2.21 keeps some (by prefix).
matrix_releases() {
    local core py want keep
    while read -r core py _; do
        case "$core" in ''|'#'*) continue ;; esac
        keep=1
        if [ -n "${SFDC_MATRIX:-}" ]; then
            keep=0
            for want in ${SFDC_MATRIX//,/ }; do
                case "$core" in "$want"|"$want".*) keep=1 ;; esac
            done
        fi
        [ $keep = 1 ] && echo "$core $py"
    done < "$MATRIX_FILE"
}

# matrix_find_python X.Y: an interpreter of that version: pythonX.Y on PATH, else pyenv's newest X.Y.*.
matrix_find_python() {
    local want="$1" cand root
    root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
    for cand in "$(command -v "python$want" 2>/dev/null)" \
        $(ls -d "$root"/versions/"$want".*/bin/"python$want" 2>/dev/null | sort -V -r); do
        [ -n "$cand" ] && [ -x "$cand" ] || continue
        if "$cand" -c "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$want' else 1)" 2>/dev/null; then
            echo "$cand"
            return 0
        fi
    done
    return 1
}

# matrix_venv CORE PYTHON_PATH: create or reuse the release's virtual environment; prints its path.
# Cached across runs (SFDC_MATRIX_CACHE, default ~/.cache/sfdc-eca/matrix), keyed by the requirements,
# the release and the exact Python; built under a lock (several runs may share the cache).
matrix_venv() {
    local core="$1" py="$2" cache venv want
    cache="${SFDC_MATRIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sfdc-eca/matrix}"
    venv="$cache/ansible-core-$core-py$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    mkdir -p "$cache"
    want="$( { cat "$MATRIX_REQUIREMENTS"; echo "ansible-core==$core"; "$py" -VV; } | sha256sum | cut -c1-64)"
    (
        flock 9
        if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.sfdc-eca-matrix.sha256" 2>/dev/null)" = "$want" ]; then
            echo "venv $venv is up to date" >&2
            exit 0
        fi
        echo "creating $venv ($("$py" -V), ansible-core $core)" >&2
        rm -rf "$venv"
        "$py" -m venv "$venv" >&2 || exit 1
        "$venv/bin/python" -m pip install --disable-pip-version-check -q "ansible-core==$core" \
            -r "$MATRIX_REQUIREMENTS" 2>&1 \
            | grep -v "^WARNING: Location '.*' is ignored: it is neither a file nor a directory" >&2
        [ "${PIPESTATUS[0]}" -eq 0 ] || exit 1
        echo "$want" > "$venv/.sfdc-eca-matrix.sha256"
    ) 9>"$venv.lock" || return 1
    echo "$venv"
}

# sanity_pip_bootstrap PYVER: ansible-test sanity --venv bootstraps pip in each sanity venv with a
# get-pip script it downloads from a host CI cannot reach; put the offline stand-in where the
# ansible-test on PATH looks first (its name follows the pip version that release pins).
sanity_pip_bootstrap() {
    local pyver="$1" pipver cache
    pipver="$(python - "$pyver" <<'EOF'
import sys
from types import SimpleNamespace
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(SimpleNamespace(version=sys.argv[1]))["pip"])
EOF
)" || { echo "FAIL: cannot read the pip version ansible-test bootstraps"; return 1; }
    cache="$HOME/.ansible/test/cache/get_pip_${pipver//./_}.py"
    mkdir -p "$(dirname "$cache")"
    if [ ! -e "$cache" ] || grep -q 'sfdc-eca-get-pip-standin' "$cache"; then
        cp "$ROOT/scripts/lib/get_pip.py" "$cache.$$" && mv -f "$cache.$$" "$cache" || return 1
        echo "pip bootstrap: $cache <- scripts/lib/get_pip.py"
    else
        echo "pip bootstrap: using the existing $cache"
    fi
}

# -- the checks: run in the release's collection copy, its venv first on PATH ---------------------------------

matrix_check_unit() {
    # The secret-store clients against real OpenBao and moto servers depend on hvac and boto3, not on
    # ansible-core: the unit stage runs them once.
    python -m pytest tests/unit -p no:cacheprovider -q -ra --basetemp="$MX_TMP/unit" \
        --ignore=tests/unit/plugins/plugin_utils/test_stores_vault.py --ignore=tests/unit/plugins/plugin_utils/test_stores_aws.py
}

matrix_check_e2e() {
    python -m pytest "${MATRIX_E2E[@]}" -p no:cacheprovider -q -ra --basetemp="$MX_TMP/e2e"
}

# Every plugin's and role's documentation, listed and rendered (text and JSON) by this release's ansible-doc.
matrix_check_doc() {
    local dir type names err="$MX_TMP/doc.err" rc=0 f name
    # what ansible-doc says about this collection (a release's warnings about its own internals are not ours)
    ours() { grep -E '\[WARNING\]|ERROR' "$err" | grep -E 'sfdc[./]eca'; }
    for dir in "${!MATRIX_DOC_TYPES[@]}" roles; do
        if [ "$dir" = roles ]; then
            [ -d roles ] || continue
            type=role
        else
            [ -d "plugins/$dir" ] || continue
            type="${MATRIX_DOC_TYPES[$dir]}"
        fi
        names="$(ansible-doc -t "$type" -l sfdc.eca 2>"$err" | awk '$1 ~ /^sfdc\.eca\./ { sub(/:$/, "", $1); print $1 }' | sort -u)"
        if ours; then rc=1; fi
        if [ -z "$names" ]; then
            echo "FAIL: ansible-doc -t $type -l sfdc.eca lists nothing, although $dir/ exists"; rc=1; continue
        fi
        # shellcheck disable=SC2086
        if ! ansible-doc -t "$type" $names >"$MX_TMP/doc-$type.txt" 2>"$err" || ours; then
            echo "FAIL: ansible-doc -t $type could not render:"; cat "$err"; rc=1
        fi
        # shellcheck disable=SC2086
        if ! ansible-doc -t "$type" --json $names >"$MX_TMP/doc-$type.json" 2>"$err"; then
            echo "FAIL: ansible-doc -t $type --json failed:"; cat "$err"; rc=1
        fi
        echo "$type: $(echo "$names" | wc -l) documented ($(echo $names | sed 's/sfdc\.eca\.//g'))"
    done
    for f in plugins/modules/*.py; do
        name="sfdc.eca.$(basename "$f" .py)"
        python -c 'import json, sys; sys.exit(0 if sys.argv[2] in json.load(open(sys.argv[1])) else 1)' \
            "$MX_TMP/doc-module.json" "$name" 2>/dev/null || { echo "FAIL: ansible-doc has no documentation of $name ($f)"; rc=1; }
    done
    return $rc
}

matrix_check_integration() {
    integration_run "matrix-$MX_CORE-in-process" "$MX_WORK"
}

matrix_check_integration_module() {
    local f
    # as stage_integration does: a second copy whose targets set SFDC_ECA_IN_PROCESS=false
    rm -rf "$MX_WORK2"
    mkdir -p "$MX_WORK2"
    cp -a "$MX_WORK/ansible_collections" "$MX_WORK2/"
    rm -rf "$MX_WORK2/ansible_collections/sfdc/eca/tests/output"
    for f in "$MX_WORK2"/ansible_collections/sfdc/eca/tests/integration/targets/*/; do
        printf '\nenv/set/SFDC_ECA_IN_PROCESS/false\n' >> "$f/aliases"
    done
    integration_run "matrix-$MX_CORE-module-exec" "$MX_WORK2" SFDC_ECA_IN_PROCESS=false
}

matrix_check_sanity() {
    local lock="$HOME/.ansible/test/.sfdc-eca-sanity-$MX_PY.lock" waited=$SECONDS
    sanity_pip_bootstrap "$MX_PY" || return 1
    # Releases on one Python can share a sanity venv (~/.ansible/test/venv/<test>/<python>/<hash>), which
    # ansible-test deletes and rebuilds when it finds it half made: one sanity run per Python at a time.
    mkdir -p "$(dirname "$lock")"
    (
        flock 9
        echo "sanity lock for Python $MX_PY after $((SECONDS - waited)) s"
        # shellcheck disable=SC2086
        ansible-test sanity --venv --python "$MX_PY" --color no ${SANITY_ARGS:-}
    ) 9>"$lock"
}

# matrix_main_stage CHECK: the stage of this run that already ran CHECK with the main .venv, if it ran.
matrix_main_stage() {
    local stage
    case "$1" in
        unit|sanity|e2e) stage="$1" ;;
        integration|integration-module) stage=integration ;;
        *) return 1 ;;
    esac
    case "${RESULT[$stage]:-}" in PASS|FAIL) echo "$stage" ;; *) return 1 ;; esac
}

# matrix_run_release CORE PYVER: every check of one release; results in $LOGDIR/matrix/CORE/results
# ("check status wall-seconds cpu-seconds [note]" lines), each check's output in $LOGDIR/matrix/CORE/<check>.log.
# The release of the main .venv (same minor, same Python) reuses what this run's stages already proved
# with it (unit, sanity, integration, e2e: the same tests on the same core and Python) and runs the rest.
matrix_run_release() {
    local core="$1" pyver="$2" py venv dir="$LOGDIR/matrix/$1" check start rc status stage main=0
    mkdir -p "$dir"
    : > "$dir/results"
    export MX_CORE="$core" MX_PY="$pyver" MX_TMP="$WORK/matrix/$core/tmp"
    export MX_WORK="$WORK/matrix/$core/in-process" MX_WORK2="$WORK/matrix/$core/module-exec"
    mkdir -p "$MX_TMP" "$MX_WORK"

    start=$SECONDS
    if [ "${core%.*}" = "$MX_MAIN_MINOR" ] && [ "$pyver" = "$MX_MAIN_PY" ]; then
        main=1
        venv="$ROOT/.venv"
        py="$venv/bin/python"
        echo "venv PASS 0 0 main" >> "$dir/results"
    elif ! py="$(matrix_find_python "$pyver")"; then
        if [ -n "${CI:-}" ]; then
            echo "FAIL: Python $pyver (for ansible-core $core) not found: not on PATH, not in pyenv" | tee "$dir/venv.log"
            echo "venv FAIL 0 0" >> "$dir/results"
        else
            echo "SKIP: Python $pyver (for ansible-core $core) not found: not on PATH, not in pyenv" | tee "$dir/venv.log"
            echo "venv SKIP 0 0" >> "$dir/results"
        fi
        return 0
    elif ! venv="$(matrix_venv "$core" "$py" 2>"$dir/venv.log")"; then
        cat "$dir/venv.log"
        echo "venv FAIL $((SECONDS - start)) 0" >> "$dir/results"
        return 0
    else
        echo "venv PASS $((SECONDS - start)) 0" >> "$dir/results"
    fi
    "$venv/bin/python" -c 'import platform, ansible.release; print(ansible.release.__version__, platform.python_version())' \
        > "$dir/versions" 2>/dev/null
    cp -a "$WORK/ansible_collections" "$MX_WORK/"
    rm -rf "$MX_WORK/ansible_collections/sfdc/eca/tests/output"

    export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" SFDC_TEST_PYTHON="$pyver"
    TIMEFORMAT='%R %U %S'
    export PYTHONPATH="$MX_WORK:$MX_WORK/ansible_collections/sfdc/eca" ANSIBLE_COLLECTIONS_PATH="$MX_WORK"
    for check in "${MATRIX_CHECKS[@]}"; do
        if [ -n "${SFDC_MATRIX_CHECKS:-}" ] && ! in_list "$check" "$SFDC_MATRIX_CHECKS"; then continue; fi
        if [ $main = 1 ] && stage="$(matrix_main_stage "$check")"; then
            echo "the $stage stage of this run ran it with this release and Python: ${RESULT[$stage]}" > "$dir/$check.log"
            echo "$check ${RESULT[$stage]} ${TIME[$stage]:-0} 0 stage" >> "$dir/results"
            continue
        fi
        start=$SECONDS
        # wall and CPU seconds (the machine may be shared: CPU time tells what the check costs)
        { time { (cd "$MX_WORK/ansible_collections/sfdc/eca" && "matrix_check_${check//-/_}") \
            >"$dir/$check.log" 2>&1 </dev/null; rc=$?; }; } 2>"$dir/$check.time"
        status=PASS
        [ $rc -eq 0 ] || status=FAIL
        echo "$check $status $((SECONDS - start)) $(awk '{ print int($2 + $3 + 0.5) }' "$dir/$check.time")" >> "$dir/results"
    done
    for f in "$MX_WORK" "$MX_WORK2"; do
        if [ -d "$f/ansible_collections/sfdc/eca/tests/output" ]; then
            cp -a "$f/ansible_collections/sfdc/eca/tests/output" "$dir/ansible-test-output-$(basename "$f")" 2>/dev/null || true
        fi
    done
}

stage_matrix() {
    local jobs releases core py line check status secs cpu cell row failed=0 skipped=0 start=$SECONDS want total
    local total_cpu all_cpu=0 note
    releases="$(matrix_releases)"
    [ -n "$releases" ] || { echo "FAIL: no release of $MATRIX_FILE matches SFDC_MATRIX=${SFDC_MATRIX:-}"; return 1; }
    jobs="${SFDC_MATRIX_JOBS:-$(nproc 2>/dev/null || echo 1)}"
    [ "$jobs" -ge 1 ] 2>/dev/null || jobs=1
    ansible_test_ssh_key || { echo "FAIL: could not create ~/.ansible/test/id_rsa"; return 1; }
    # the release and Python of the main .venv, whose stages this run may already have run
    read -r MX_MAIN_MINOR MX_MAIN_PY < <(python -c 'import sys, ansible.release as r
print(".".join(r.__version__.split(".")[:2]), "%d.%d" % sys.version_info[:2])')
    export MX_MAIN_MINOR MX_MAIN_PY
    echo "releases: $(echo "$releases" | awk '{printf "%s%s (Python %s)", (NR > 1 ? ", " : ""), $1, $2}')"
    echo "checks: ${SFDC_MATRIX_CHECKS:-${MATRIX_CHECKS[*]}}; $jobs releases at a time; logs in ${LOGDIR#"$ROOT"/}/matrix/"
    while read -r core py; do
        while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
        echo "$(date -u +%H:%M:%S) start ansible-core $core (Python $py)"
        ( matrix_run_release "$core" "$py"; echo "$(date -u +%H:%M:%S) done  ansible-core $core" ) &
    done <<< "$releases"
    wait

    sfdc_banner "matrix: ansible-core x Python ($((SECONDS - start)) s)"
    row="$(printf '%-9s %-8s %-10s' core python venv)"
    for check in "${MATRIX_CHECKS[@]}"; do row+="$(printf ' %-18s' "$check")"; done
    echo "$row total (CPU)"
    while read -r core py; do
        read -r line cell < "$LOGDIR/matrix/$core/versions" 2>/dev/null || { line="$core"; cell="$py"; }
        row="$(printf '%-9s %-8s' "$line" "$cell")"
        total=0
        total_cpu=0
        for check in venv "${MATRIX_CHECKS[@]}"; do
            cell="-"
            line="$(grep "^$check " "$LOGDIR/matrix/$core/results" 2>/dev/null)"
            if [ -n "$line" ]; then
                read -r _ status secs cpu note <<< "$line"
                cell="$status ${secs}s"
                case "$note" in
                    main) cell="main .venv" ;;
                    stage) cell="$status ${secs}s (stage)" ;;  # not this stage's time
                    *) total=$((total + secs)); total_cpu=$((total_cpu + ${cpu:-0})) ;;
                esac
                case "$status" in FAIL) failed=$((failed + 1)) ;; SKIP) skipped=$((skipped + 1)) ;; esac
            elif [ "$check" = venv ]; then
                cell="FAIL (no result)"; failed=$((failed + 1))
            fi
            if [ "$check" = venv ]; then row+="$(printf ' %-10s' "$cell")"; else row+="$(printf ' %-18s' "$cell")"; fi
        done
        echo "$row ${total}s (${total_cpu}s)"
        all_cpu=$((all_cpu + total_cpu))
    done <<< "$releases"

    while read -r core py; do
        while read -r check status _; do
            [ "$status" = FAIL ] || continue
            sfdc_banner "matrix: ansible-core $core, $check failed (${LOGDIR#"$ROOT"/}/matrix/$core/$check.log)"
            want='^(ERROR|FATAL|FAILED|FAIL)[: ]|^E +|^fatal: \[|Error: |rror: '
            grep -E "$want" "$LOGDIR/matrix/$core/$check.log" | head -n 40
            echo "--- last lines ---"
            tail -n 15 "$LOGDIR/matrix/$core/$check.log"
        done < "$LOGDIR/matrix/$core/results"
    done <<< "$releases"

    echo "matrix: $(echo "$releases" | wc -l) releases, $failed failed checks, $skipped skipped;" \
        "$((SECONDS - start)) s wall, $all_cpu s CPU (checks; venv builds not counted)"
    [ $failed -eq 0 ] || return 1
    if [ $skipped -gt 0 ]; then
        echo "NOTE: some releases were skipped (their Python is missing; CI=true fails instead)"
        [ $skipped -lt "$(echo "$releases" | wc -l)" ] || return "$SKIPPED"
    fi
    return 0
}
