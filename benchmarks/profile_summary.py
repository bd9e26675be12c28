"""Summarise a py-spy profile in collapsed-stack form (``py-spy record -f raw``, benchmarks/run.py --profile).

    .venv/bin/python benchmarks/profile_summary.py benchmarks/results/profile-a-vault_file-n2000-cpu.txt \
        [--rate 100] [--top 40] [--under FUNCTION] [--process SUBSTRING]

Prints the samples (and seconds at --rate samples/s) per process, then the functions with the most samples
including their callees (inclusive) and on top of the stack (self), optionally only in stacks that pass
through a frame containing --under (e.g. ``run_fleet`` for the batch task's threads) or in processes whose
name contains --process.
"""

import argparse
import collections
import re
import sys

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def parse(path):
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _sep, count = line.rpartition(" ")
            try:
                yield stack.split(";"), int(count)
            except ValueError:
                continue


def short(frame):
    """'func (path/to/file.py:123)' -> 'func (file.py)': the same function at any line counts once."""
    match = FRAME.match(frame)
    if not match:
        return frame
    return "%s (%s)" % (match.group("func"), match.group("file").rsplit("/", 1)[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile")
    parser.add_argument("--rate", type=float, default=100.0, help="samples per second of the recording (default 100)")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--under", help="only stacks with a frame containing this text")
    parser.add_argument("--exclude", help="leave out stacks with a frame containing this text (e.g. WorkerProcess.run: "
                                          "the controller's own work)")
    parser.add_argument("--process", help="only processes whose frame (the first) contains this text")
    args = parser.parse_args(argv)
    processes = collections.Counter()
    inclusive, own = collections.Counter(), collections.Counter()
    total = 0
    for frames, count in parse(args.profile):
        process = frames[0] if frames and frames[0].startswith("process ") else "?"
        processes[re.sub(r"process \d+:", "process:", process)[:100]] += count
        if args.process and args.process not in process:
            continue
        if args.under and not any(args.under in frame for frame in frames):
            continue
        if args.exclude and any(args.exclude in frame for frame in frames):
            continue
        total += count
        names = [short(f) for f in frames[1:] if not f.startswith("process ")]
        for name in set(names):
            inclusive[name] += count
        if names:
            own[names[-1]] += count
    print("samples per process (%.0f samples/s):" % args.rate)
    for name, count in processes.most_common(15):
        print("  %8d  %7.1f s  %s" % (count, count / args.rate, name))
    under = " under %r" % args.under if args.under else ""
    within = " in %r" % args.process if args.process else ""
    print("\nselected: %d samples, %.1f s%s%s" % (total, total / args.rate, under, within))
    if not total:
        return 0
    print("\ninclusive (the function and what it calls):")
    for name, count in inclusive.most_common(args.top):
        print("  %5.1f%%  %7.1f s  %s" % (100.0 * count / total, count / args.rate, name))
    print("\nself (on top of the stack):")
    for name, count in own.most_common(args.top):
        print("  %5.1f%%  %7.1f s  %s" % (100.0 * count / total, count / args.rate, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
