#!/usr/bin/env python3
"""Regenerates the benchmark table: every distillation method on one teacher, scored the same way.

    python3 bench/table/run.py                      # train what is missing, score every row, write the table
    python3 bench/table/run.py --timing             # also time every row (run it on an otherwise idle machine)
    python3 bench/table/run.py --plan               # print the commands, run nothing

The budgets and rows live in a JSON config (default bench/table/mnist.json). Three kinds of state:
- runs (--runs, outside the work tree): each method's run folder, under a folder named after the
  teacher's SHA-256 (another teacher never continues these runs). A run interrupted (Ctrl-C,
  SIGTERM, a session ending) resumes from its last checkpoint the next time; its wall-clock seconds
  are saved every 30 s and summed over invocations. A finished one holds bench-done.json (seconds,
  command, the SHA-256 of every input file) and is skipped while those still match; a mismatch is
  an error, never a silent reuse.
- results (--results, default bench/table/results, committed): one JSON per scored row and its
  PNGs, each naming the teacher's and the classifier's SHA-256. A row already scored with the same
  files is skipped, so the table survives losing the run folders; a row scored with other files is
  scored again.
Runs train with their own seed (train_seed), distinct from the evaluation seed (seed): the noise a
row is scored on was never a training input (Adv-KD's trajectories, the Denoising Student's
held-out pairs).
- the table: written to <results>/table.md, spliced into docs/RESULTS.md between its
  bench-table markers, and the side-by-side PNG (the first images of every row, the same noise)
  written to <results>/compare.png.

Only the Python standard library: it drives the `diffkd` binary and reads its JSON.
"""
import argparse
import hashlib
import json
import os
import re
import signal
import statistics
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Timing files record how they were taken; one taken another way is timed again.
TIMING_PROTOCOL = "warm: ms/image over the batches after each run's first"


def fail(message):
    sys.exit(f"bench/table: {message}")


def sha256(path):
    """The SHA-256 of a file's bytes, in hex (files identify teachers, classifiers and students)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def repo_path(value):
    """A config's path: relative ones are relative to the repository, not the current folder."""
    path = Path(value)
    return str(path if path.is_absolute() else REPO / path)


class Bench:
    def __init__(self, args):
        self.args = args
        self.config_path = Path(args.config)
        try:
            self.config = json.loads(self.config_path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            fail(f"{self.config_path}: {e}")
        c = self.config
        self.results = Path(args.results).resolve()
        self.diffkd = str(Path(args.diffkd).resolve())
        teacher = str(Path(args.teacher).resolve()) if args.teacher else repo_path(c["teacher"])
        classifier = str(Path(args.classifier).resolve()) if args.classifier else repo_path(c["classifier"])
        # What every result depends on; --plan may run before the teacher exists.
        self.identity = {"teacher_sha256": sha256(teacher) if Path(teacher).exists() else "missing",
                         "classifier_sha256": sha256(classifier) if Path(classifier).exists() else "missing"}
        self.runs = Path(args.runs).resolve() / f"teacher-{self.identity['teacher_sha256'][:12]}"
        self.values = {
            "teacher": teacher,
            "classifier": classifier,
            "data": args.data or c["data"],
            "runs": str(self.runs),
            "seed": str(c["seed"]),
        }
        self.train_seed = str(c.get("train_seed", int(c["seed"]) + 1))
        if self.train_seed == self.values["seed"]:
            fail(f"{self.config_path}: train_seed must differ from seed (the evaluation noise must not be a training input)")
        self.count = int(c["count"])
        self.planned = set()  # runs already printed by --plan
        self.threads = str(args.threads or c["threads"])
        self.child = None  # the diffkd process running now (SIGTERM/SIGHUP are forwarded to it as SIGINT)

    def fill(self, text):
        return text.format(**self.values)

    # --- runs -------------------------------------------------------------------------------------
    def run_command(self, name):
        spec = self.config["runs"][name]
        return [self.diffkd] + [self.fill(a) for a in spec["args"]] + [
            "--run-dir", str(self.runs / name), "--resume", "--seed", self.train_seed, "--threads", self.threads]

    def input_files(self, command):
        """SHA-256 of every existing file the command names (the teacher, a previous run's student)."""
        return {a: sha256(a) for a in command[1:] if a.startswith("/") and Path(a).is_file()}

    def run_done(self, name):
        """Whether run `name` finished with this command and these input files (a mismatch fails)."""
        done = load_json(self.runs / name / "bench-done.json")
        if done is None:
            return False
        command = self.run_command(name)
        if done.get("command") != " ".join(command) or done.get("inputs") != self.input_files(command):
            fail(f"run {name} in {self.runs / name} finished with another command or other input files than the "
                 f"config asks for now; delete that folder to run it again")
        return True

    def run_seconds(self, name, student_steps=None):
        """Wall-clock seconds of a finished run; with student_steps, up to that stage's student (PD, RDD),
        plus the run it continues from (RDD starts from PD's 8-step student)."""
        done = load_json(self.runs / name / "bench-done.json")
        if done is None:
            return None
        stages = load_json(self.runs / name / "bench-stages.json") or {}
        seconds = stages.get(str(student_steps), done["seconds"]) if student_steps else done["seconds"]
        before = self.config["runs"][name].get("continues")
        if before:
            earlier = self.run_seconds(before["run"], before.get("student_steps"))
            seconds = None if earlier is None else seconds + earlier
        return seconds

    def ensure_run(self, name):
        """Trains run `name` (and what it needs) unless it is finished; resumes a started one."""
        if name not in self.config["runs"]:
            fail(f"{self.config_path}: runs.{name}: no such run (have {', '.join(self.config['runs'])})")
        if name in self.planned or self.run_done(name):
            return
        spec = self.config["runs"][name]
        for need in spec.get("needs", []):
            self.ensure_run(need)
        run_dir = self.runs / name
        command = self.run_command(name)
        print(f"bench/table: run {name} ({spec['budget']})\n  {' '.join(command)}", flush=True)
        if self.args.plan:
            self.planned.add(name)
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        seconds_file, stages_file = run_dir / "bench-seconds.json", run_dir / "bench-stages.json"
        earlier = (load_json(seconds_file) or {"seconds": 0.0})["seconds"]
        stages = load_json(stages_file) or {}
        start, saved = time.monotonic(), [time.monotonic()]

        def on_line(line):  # the seconds survive a session that ends mid-run (at most 30 s lost)
            now = time.monotonic()
            stage = re.match(r"stage \d+ done: (\d+)-step student", line)
            if stage:
                stages[stage.group(1)] = earlier + now - start
                write_json(stages_file, stages)
            if stage or now - saved[0] > 30:
                write_json(seconds_file, {"seconds": earlier + now - start})
                saved[0] = now

        try:
            rc = self.stream(command, self.runs / f"{name}.log", name, on_line)
        finally:
            spent = earlier + time.monotonic() - start
            write_json(seconds_file, {"seconds": spent})
        if rc != 0:
            fail(f"run {name} stopped (exit {rc}); its log is {self.runs / (name + '.log')}; run again to resume")
        done = {"seconds": spent, "budget": spec["budget"], "command": " ".join(command),
                "inputs": self.input_files(command), "load_at_start": os.getloadavg()[0]}
        write_json(run_dir / "bench-done.json", done)
        print(f"bench/table: run {name} done in {format_seconds(spent)}", flush=True)

    def stream(self, command, log_path, tag, on_line=None):
        """Runs a command, its output both to the log and (tagged) to our stdout; returns its exit code."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as log:
            log.write(f"$ {' '.join(command)}\n")
            self.child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                          bufsize=1, cwd=REPO)
            try:
                for line in self.child.stdout:
                    log.write(line)
                    log.flush()
                    if on_line:
                        on_line(line)
                    if not self.args.quiet:
                        sys.stdout.write(f"[{tag}] {line}")
                        sys.stdout.flush()
            except KeyboardInterrupt:
                pass  # the child got SIGINT too (the terminal's, or forwarded): it saves a checkpoint and exits
            rc = self.child.wait()
            self.child = None
            return rc

    def forward_stop(self, signum, frame):
        """SIGTERM/SIGHUP (a session ending): the running diffkd saves a checkpoint, as on Ctrl-C."""
        if self.child is not None:
            self.child.send_signal(signal.SIGINT)
        raise KeyboardInterrupt

    # --- rows -------------------------------------------------------------------------------------
    def row_count(self, row):
        return int(row.get("count", self.count))

    def counts(self):
        """Every N a row is scored at, the table's own first: calibration rows come at each."""
        return sorted({self.count} | {self.row_count(r) for r in self.config["rows"]}, key=lambda n: (n != self.count, -n))

    def run_budgets(self, name):
        """The config's args of run `name` and of every run it builds on (RDD: PD's too)."""
        spec = self.config["runs"][name]
        budgets = {name: spec["args"]}
        for earlier in spec.get("needs", []) + ([spec["continues"]["run"]] if "continues" in spec else []):
            budgets.update(self.run_budgets(earlier))
        return budgets

    def row_identity(self, row):
        """What a row's results depend on: the teacher, the classifier and, for a student, the budgets
        it was trained with (a changed budget in the config means the row is measured again)."""
        identity = dict(self.identity)
        if "run" in row:
            identity["run_budgets"] = self.run_budgets(row["run"])
        return identity

    def current_json(self, path, row):
        """A results file's JSON if it was made with this row's identity, else None (one made with
        other files or budgets is redone)."""
        found = load_json(path)
        if found is not None and all(found.get(k) == v for k, v in self.row_identity(row).items()):
            return found
        return None

    def current(self, path, row):
        return self.current_json(path, row) is not None

    def score_row(self, row):
        key = row["key"]
        out = self.results / f"{key}.json"
        if self.current(out, row):
            return
        if "run" in row:
            self.ensure_run(row["run"])
        model = self.fill(row["model"])
        count = self.row_count(row)
        command = [self.diffkd, "eval", "--model", model, "--classifier", self.values["classifier"],
                   "--data", self.values["data"], "--count", str(count), "--seed", self.values["seed"],
                   "--threads", self.threads, "--strip", str(self.results / f"{key}.png"),
                   "--grid", str(self.results / f"{key}-grid.png")] + sampler_flags(row.get("sampler"))
        reference = self.config["fidelity_sampler"]
        if fidelity_applies(row):
            cache = self.runs / f"teacher-{reference.replace(':', '-')}-{count}.safetensors"
            command += ["--teacher", self.values["teacher"], "--teacher-sampler", reference,
                        "--teacher-samples", str(cache)]
        print(f"bench/table: score {key} ({row['label']}) at N = {count}\n  {' '.join(command)}", flush=True)
        if self.args.plan:
            return
        if not Path(model).exists():
            fail(f"row {key}: {model} is missing (its run finished without it?)")
        self.results.mkdir(parents=True, exist_ok=True)
        scratch = self.runs / "scores" / f"{key}.json"
        scratch.parent.mkdir(parents=True, exist_ok=True)
        rc = self.stream(command + ["--out", str(scratch)], self.runs / "scores" / f"{key}.log", key)
        if rc != 0:
            fail(f"scoring {key} failed (exit {rc}); see {self.runs / 'scores' / (key + '.log')}")
        scores = json.loads(scratch.read_text())
        scores.update(self.row_identity(row))
        scores["label"] = row["label"]
        scores["parameters"] = self.parameters(model)
        if "run" in row:
            steps = re.search(r"steps-(\d+)\.safetensors$", model)
            scores["training_seconds"] = self.run_seconds(row["run"], int(steps.group(1)) if steps else None)
        write_json(out, scores)

    def parameters(self, model):
        text = subprocess.run([self.diffkd, "info", "--model", model], capture_output=True, text=True, check=True).stdout
        found = re.search(r"^parameters: ([\d,]+)", text, re.M)
        if not found:
            fail(f"`diffkd info --model {model}` printed no parameter count")
        return int(found.group(1).replace(",", ""))

    def score_calibration(self, source, count):
        out = self.results / f"calibration-{source}-{count}.json"
        found = load_json(out)
        if found is not None and found.get("classifier_sha256") == self.identity["classifier_sha256"]:
            return
        command = [self.diffkd, "eval", "--source", source, "--classifier", self.values["classifier"],
                   "--data", self.values["data"], "--count", str(count), "--seed", self.values["seed"],
                   "--threads", self.threads, "--out", str(out)]
        print(f"bench/table: calibration {source} at N = {count}", flush=True)
        if not self.args.plan:
            self.results.mkdir(parents=True, exist_ok=True)
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=REPO)
            scores = json.loads(out.read_text())
            scores["classifier_sha256"] = self.identity["classifier_sha256"]
            write_json(out, scores)

    # --- timing -----------------------------------------------------------------------------------
    def time_row(self, row):
        """ms per image at batch 1 and batch 64: medians of several runs of `diffkd sample`, each
        started on an idle machine and each generating two batches or more, of which only the
        batches after the first count (the first also allocates every buffer: for a one-pass
        student at batch 64 that quadruples the time; a long-running sampler never pays it again)."""
        key = row["key"]
        out = self.results / f"{key}.timing.json"
        if (self.current_timing(out, row) and not self.args.retime) or row.get("timing") is False:
            return
        scores = self.results / f"{key}.json"
        if not self.current(scores, row):
            return  # not scored (with these files) yet: its model may not exist
        nfe = int(json.loads(scores.read_text())["nfe"])
        model = self.fill(row["model"])
        timing = dict(self.row_identity(row), protocol=TIMING_PROTOCOL, threads=int(self.threads),
                      timed_at=time.strftime("%Y-%m-%d %H:%M:%S"))
        for batch, repeats in ((1, 5), (64, 3)):
            count = 2 * batch if batch > 1 else max(2, min(32, 200 // nfe))
            command = [self.diffkd, "sample", "--model", model, "--count", str(count), "--batch", str(batch),
                       "--seed", self.values["seed"], "--threads", self.threads,
                       "--out", str(self.runs / "timing.png")] + sampler_flags(row.get("sampler"))
            if self.args.plan:
                print("  " + " ".join(command))
                continue
            (self.runs).mkdir(parents=True, exist_ok=True)
            runs, busy = [], []
            for _ in range(repeats):
                busy.append(wait_until_idle(self.args.idle_limit))
                text = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO).stdout
                runs.append(float(re.search(r"([\d.]+) ms per image warm", text).group(1)))
            timing[f"batch_{batch}"] = {"median_ms": statistics.median(runs), "runs_ms": runs, "images": count,
                                        "timed_images": count - batch, "cpu_busy_before": busy}
        print(f"bench/table: timed {key}: {timing}", flush=True)
        if not self.args.plan:
            write_json(out, timing)

    def current_timing(self, path, row):
        """A timing file's JSON if it matches the row's identity and was taken with this protocol."""
        found = self.current_json(path, row)
        return found if found is not None and found.get("protocol") == TIMING_PROTOCOL else None

    # --- the table --------------------------------------------------------------------------------
    def write_table(self):
        rows = [(r, self.current_json(self.results / f"{r['key']}.json", r),
                 self.current_timing(self.results / f"{r['key']}.timing.json", r)) for r in self.config["rows"]]
        baseline = next((t for r, s, t in rows if r.get("baseline") and t), None)
        lines = [
            f"| model | NFE | parameters | ms/image, batch 1 | ms/image, batch 64 | speed-up (batch 64) | FID-proxy | KID "
            f"| IS-proxy | smallest class | PSNR to teacher | training |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row, s, t in rows:
            if s is None:
                lines.append(f"| {row['label']} | not yet measured |" + " |" * 10)
                continue
            n = "" if int(s["N"]) == self.count else f" (N = {s['N']})"
            b1 = t and t.get("batch_1", {}).get("median_ms")
            b64 = t and t.get("batch_64", {}).get("median_ms")
            speedup = (baseline["batch_64"]["median_ms"] / b64) if (baseline and b64) else None
            fidelity = s.get("fidelity_to_teacher")
            training = (format_seconds(s["training_seconds"]) if "training_seconds" in s
                        else self.config.get("teacher_training", "-") if row["model"] == "{teacher}" else "-")
            lines.append(
                f"| {row['label']}{n} | {s['nfe']} | {s['parameters']:,} | {fmt(b1, 1)} | {fmt(b64, 2)} | "
                f"{fmt(speedup, 1, 'x')} | {fmt(s['fid_proxy'], 2)} | {fmt(s['kid'], 4)} | {fmt(s['is_proxy'], 2)} | "
                f"{100 * min(s['class_fraction']):.1f}% | {fmt(fidelity and fidelity['psnr'], 1, ' dB')} | "
                f"{training} |")
        for count in self.counts():
            n = "" if count == self.count else f" (N = {count})"
            for source, label in (("real", "calibration: real training images (the floor)"),
                                  ("blurred", "calibration: test images, 3x3 box blur"),
                                  ("noise", "calibration: Gaussian noise")):
                s = load_json(self.results / f"calibration-{source}-{count}.json")
                if s:
                    lines.append(f"| {label}{n} | - | - | - | - | - | {fmt(s['fid_proxy'], 2)} | {fmt(s['kid'], 4)} | "
                                 f"{fmt(s['is_proxy'], 2)} | {100 * min(s['class_fraction']):.1f}% | - | - |")
        # The side-by-side PNG: one strip per row in the table's order (a blank strip for a row not
        # yet measured), the same noise in every column.
        order = [(r, self.results / f"{r['key']}.png") for r, s, t in rows
                 if s is not None and (self.results / f"{r['key']}.png").exists()]
        if order:
            lines += ["", f"compare.png, top to bottom: {'; '.join(r['label'] for r, _ in order)}."]
            stack_pngs([p for _, p in order], self.results / "compare.png")
        table = "\n".join(lines) + "\n"
        self.results.mkdir(parents=True, exist_ok=True)
        (self.results / "table.md").write_text(table)
        docs = REPO / "docs" / "RESULTS.md"
        if self.args.docs and docs.exists():
            text = docs.read_text()
            begin, end = "<!-- bench-table:begin -->", "<!-- bench-table:end -->"
            if begin in text and end in text:
                head, rest = text.split(begin, 1)
                docs.write_text(head + begin + "\n" + table + end + rest.split(end, 1)[1])
        print(table)


def sampler_flags(spec):
    """ddim:S[:eta=E] | ddpm:S[:small|large] -> `diffkd eval`/`sample` flags (none: the model's own)."""
    if not spec:
        return []
    kind, steps, *extra = spec.split(":")
    flags = ["--sampler", kind, "--steps", steps]
    for e in extra:
        if e.startswith("eta="):
            flags += ["--eta", e[4:]]
        elif e in ("small", "large"):
            flags += ["--variance", e]
        else:
            flags += ["--spacing", e]
    return flags


def fidelity_applies(row):
    """Fidelity compares images from the same noise through a deterministic map: not for ancestral
    (DDPM) rows, and not for the reference row itself."""
    if row.get("fidelity") is False or row.get("baseline"):
        return False
    return not (row.get("sampler") or "").startswith("ddpm")


def load_json(path):
    return json.loads(path.read_text()) if path.exists() else None


def cpu_busy(seconds=0.5):
    """The fraction of all CPUs' time spent busy over `seconds` (from /proc/stat)."""
    def sample():
        fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait
    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def wait_until_idle(limit=0.15, patience=120):
    """Waits (up to `patience` s) until the machine is idle; fails if it never is. Returns the busy
    fraction measured just before the timed run."""
    deadline = time.monotonic() + patience
    while True:
        busy = cpu_busy()
        if busy <= limit:
            return round(busy, 3)
        if time.monotonic() > deadline:
            fail(f"--timing: the machine stayed {100 * busy:.0f}% busy for {patience} s; time rows on an idle machine")


def write_json(path, value):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(tmp, path)


def fmt(value, digits, suffix=""):
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def format_seconds(seconds):
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes} min"


# --- PNG, 8-bit grey or RGB, enough to stack our own strips -------------------------------------
def read_png(path):
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail(f"{path}: not a PNG file")
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or colour not in (0, 2) or interlace:
                fail(f"{path}: only 8-bit grey or RGB, non-interlaced PNGs are read here")
            channels = 1 if colour == 0 else 3
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, rows, previous = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):  # PNG filters: None, Sub, Up, Average, Paeth
            a = line[i - channels] if i >= channels else 0
            b = previous[i]
            c = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        previous = line
    return width, channels, rows


def stack_pngs(paths, out):
    """The PNGs one above the other (the same width and channels; narrower ones are padded black)."""
    images = [read_png(p) for p in paths]
    width, channels = max(w for w, _, _ in images), images[0][1]
    rows = []
    for w, c, lines in images:
        if c != channels:
            fail(f"{out}: cannot stack grey and RGB strips")
        rows += [line + bytes((width - w) * c) for line in lines]
    raw = b"".join(b"\x00" + line for line in rows)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, len(rows), 8, 0 if channels == 1 else 2, 0, 0, 0)
    out.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) +
                    chunk(b"IEND", b""))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(REPO / "bench/table/mnist.json"), help="budgets and rows (JSON)")
    parser.add_argument("--runs", default=os.environ.get("DIFFKD_TABLE_RUNS", str(Path.home() / "diffkd-runs/table")),
                        help="run folders, outside the work tree (default $DIFFKD_TABLE_RUNS or ~/diffkd-runs/table)")
    parser.add_argument("--results", default=str(REPO / "bench/table/results"), help="scored rows and PNGs")
    parser.add_argument("--diffkd", default=str(REPO / "build/release/diffkd"), help="the diffkd binary")
    parser.add_argument("--teacher", help="override the config's teacher")
    parser.add_argument("--classifier", help="override the config's evaluation classifier")
    parser.add_argument("--data", help="override the config's dataset")
    parser.add_argument("--threads", type=int, help="override the config's thread count")
    parser.add_argument("--only", help="comma-separated row keys to score (default: all)")
    parser.add_argument("--timing", action="store_true", help="also time every scored row (an idle machine!)")
    parser.add_argument("--retime", action="store_true", help="with --timing: time every row again, in this session")
    parser.add_argument("--idle-limit", type=float, default=0.15,
                        help="with --timing: the busy CPU fraction under which the machine counts as idle (tests: 1)")
    parser.add_argument("--no-docs", dest="docs", action="store_false", help="do not splice the table into docs/RESULTS.md")
    parser.add_argument("--plan", action="store_true", help="print the commands without running them")
    parser.add_argument("--quiet", action="store_true", help="keep the runs' output in their logs only")
    args = parser.parse_args()
    bench = Bench(args)
    signal.signal(signal.SIGTERM, bench.forward_stop)
    signal.signal(signal.SIGHUP, bench.forward_stop)
    if not Path(bench.diffkd).exists():
        fail(f"{bench.diffkd}: no diffkd binary (build it: bash scripts/build.sh release)")
    rows = bench.config["rows"]
    if args.only:
        keys = args.only.split(",")
        unknown = [k for k in keys if k not in {r["key"] for r in rows}]
        if unknown:
            fail(f"--only: no row {', '.join(unknown)} in {bench.config_path}")
        rows = [r for r in rows if r["key"] in keys]
    for count in bench.counts():
        for source in bench.config.get("calibration", []):
            bench.score_calibration(source, count)
    for row in rows:
        bench.score_row(row)
    if args.timing:
        for row in rows:
            bench.time_row(row)
    if not args.plan:
        bench.write_table()


if __name__ == "__main__":
    main()
