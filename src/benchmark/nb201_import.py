#!/usr/bin/env python3
"""NAS-Bench-201 importer: the official benchmark files -> pwsnas's open CSV benchmark table.

Owned by `pwsnas benchmark import` (src/benchmark/import.rs embeds this file with include_str! and
runs it). The official files are pickles that only the benchmark's own API packages read correctly,
so the reading is done here, in Python, with those packages, and pwsnas itself only ever reads the
plain CSV this script writes. Self-contained on purpose: stdlib plus torch/numpy and the two API
packages, nothing of pwsnas.

    python3 nb201_import.py --in PATH --out TABLE.csv [--format auto|nb201-v1_0|nb201-v1_1|nats-tss]
                            [--trust-pickle]

Inputs (`--format auto` tells them apart by what the path is and what its bytes start with):

  nb201-v1_0  NAS-Bench-201-v1_0-e61699.pth   read by nas_201_api.NASBench201API (pip: nas-bench-201)
  nb201-v1_1  NAS-Bench-201-v1_1-096897.pth   idem; v1_0 and v1_1 are told apart by content: in
              v1_0 the 12-epoch schedule holds CIFAR-10-valid only, in v1_1 it holds every data set
  nats-tss    NATS-tss-v1_0-3ffb9.pickle.pbz2 (one file), or the folder NATS-tss-v1_0-3ffb9-simple
              / -full (meta.pickle.pbz2 + one NNNNNN.pickle.pbz2 per cell), read by
              nats_bench.create(path, "tss", fast_mode=<folder?>) (pip: nats_bench)

Output: CSV, header `index,arch,<columns>`, one row per evaluated cell, sorted by index; `index` is
the cell's index in the benchmark, `arch` its string `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`.
Columns, for each schedule E in (12, 200), in this order:

  column                    API call (is_random=False: the mean over the trials/seeds;
                            iepoch=None: after the schedule's last epoch)                 key
  cifar10-test@E            api.get_more_info(i, "cifar10",        hp=E, is_random=False) "test-accuracy"
                            (= ArchResults.get_metrics("cifar10", "ori-test"): trained on train+valid,
                            evaluated on the original CIFAR-10 test set; the shared table
                            nb201-cifar10-12e.csv's `cifar10-test@12`)
  cifar10-valid@E           api.get_more_info(i, "cifar10-valid",  hp=E, is_random=False) "valid-accuracy"
                            (= get_metrics("cifar10-valid", "x-valid"): trained on train, evaluated on valid)
  cifar100-valid@E          api.get_more_info(i, "cifar100",       hp=E, is_random=False) "valid-accuracy"
                            (= get_metrics("cifar100", "x-valid"))
  cifar100-test@E           idem                                                            "test-accuracy"
                            (= get_metrics("cifar100", "x-test"))
  ImageNet16-120-valid@E    api.get_more_info(i, "ImageNet16-120", hp=E, is_random=False) "valid-accuracy"
  ImageNet16-120-test@E     idem                                                            "test-accuracy"

Values are top-1 accuracies in percent exactly as the API returns them, rounded to 6 decimals (this
only strips float noise: the benchmark's accuracies are counts over evaluation sets of 3,000 to 25,000
images, averaged over at most 3 trials) and written with Python's repr (`69.55`, `10.0`, `93.376667`).

Blank rule: a column is written when at least one cell of the file has that data set in that
schedule; a cell without it (the API has no such data set or evaluation set for it) is left empty.
So v1_0 gives the six @200 columns plus `cifar10-valid@12`, v1_1 and NATS-tss all twelve.

On success, one JSON line on stdout:
  {"format": "nb201-v1_1", "rows": 15625, "columns": [<the measurement columns, without index/arch>],
   "out": "<absolute path>", "in": "<absolute path>", "blank_cells": {<column>: <count>, ...}}
Progress goes to stderr. The table is written to a temporary file beside --out and renamed over it.

Exit codes: 0 done; 2 a bad input or a missing package, as one line on stderr naming the file and the
fix (no traceback); 1 an unexpected failure (a bug: the traceback is printed).

Safety: torch >= 2.6 loads .pth files with its restricted unpickler (weights_only); the API's own
torch.load is run under that, with numpy's scalar/array types allowed. If the file needs more,
the importer stops and says so; --trust-pickle lets torch unpickle it unrestricted (only for a file
from the official source). NATS-Bench's API reads its .pbz2 pickles with plain pickle.load: import
those only from the official source.
"""

import argparse
import contextlib
import csv
import json
import os
import re
import sys
import tempfile
import warnings

PROG = "nb201-import"
SCHEDULES = ("12", "200")
# (data set as the API names it, the API's get_more_info key, the column's data-set-split name)
MEASUREMENTS = (
    ("cifar10", "test-accuracy", "cifar10-test"),
    ("cifar10-valid", "valid-accuracy", "cifar10-valid"),
    ("cifar100", "valid-accuracy", "cifar100-valid"),
    ("cifar100", "test-accuracy", "cifar100-test"),
    ("ImageNet16-120", "valid-accuracy", "ImageNet16-120-valid"),
    ("ImageNet16-120", "test-accuracy", "ImageNet16-120-test"),
)
DATASETS = ("cifar10", "cifar10-valid", "cifar100", "ImageNet16-120")
FORMATS = ("auto", "nb201-v1_0", "nb201-v1_1", "nats-tss")
OFFICIAL = (
    "NAS-Bench-201-v1_0-e61699.pth, NAS-Bench-201-v1_1-096897.pth, "
    "NATS-tss-v1_0-3ffb9.pickle.pbz2 or the folder NATS-tss-v1_0-3ffb9-simple"
)
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
_EDGE = "(?:%s)~%%d" % "|".join(NB201_OPS)
ARCH_RE = re.compile(
    r"^\|%s\|\+\|%s\|%s\|\+\|%s\|%s\|%s\|$"
    % (_EDGE % 0, _EDGE % 0, _EDGE % 1, _EDGE % 0, _EDGE % 1, _EDGE % 2)
)
# What to do when an import fails: the pip package, and where pwsnas's set-up puts it.
INSTALL = {
    "torch": "the pip package torch (`cargo xtask setup` installs torch 2.11.0 into $PWSNAS_HOME/deps/torch-2.11.0)",
    "numpy": "the pip package numpy (`cargo xtask setup` installs one with onnx, linked as .deps/onnx-site)",
    "nas_201_api": "the pip package nas-bench-201 (`cargo xtask setup` installs it, linked as .deps/nb201-api)",
    "nats_bench": "the pip package nats_bench (`cargo xtask setup` installs it, linked as .deps/nb201-api)",
}
NATS_CELL_RE = re.compile(r"^(\d+)\.pickle\.pbz2$")
# torch's legacy (pre-1.6) .pth starts with its magic number pickled with protocol 2.
TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


class Fault(Exception):
    """An expected failure: one line for the user, exit code 2."""


def say(msg):
    print("[%s] %s" % (PROG, msg), file=sys.stderr, flush=True)


@contextlib.contextmanager
def api_output_to_stderr():
    """The API packages print to stdout; stdout is reserved for the final JSON line."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def need(module, path):
    """Imports `module`, or a Fault naming the pip package that provides the missing import."""
    try:
        return __import__(module)
    except (ImportError, OSError) as e:  # OSError: a package whose shared libraries are missing
        top = (getattr(e, "name", None) or module).split(".")[0]
        pkg = INSTALL.get(top, "the pip package " + top)
        raise Fault(
            "%s: reading it needs the Python module `%s`, which is not importable (%s): install %s and put its "
            "folder on PYTHONPATH" % (path, top, one_line(e), pkg)
        )


# ---------------------------------------------------------------------------------------------
# Format detection


def sniff(path):
    """(kind, detail) of `path`: ("nats-dir", None), ("bz2", None), ("torch", "zip"|"legacy")."""
    if not os.path.exists(path):
        raise Fault("%s: no such file or folder: pass the path of %s" % (path, OFFICIAL))
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "meta.pickle.pbz2")):
            return "nats-dir", None
        inside = sorted(
            n for n in os.listdir(path)
            if n.endswith(".pth") or n.endswith(".pickle.pbz2") or n.startswith("NATS-tss")
        )
        fix = ("pass the file or folder inside, e.g. %s" % os.path.join(path, inside[0])) if inside else "pass one of " + OFFICIAL
        raise Fault("%s is a folder without meta.pickle.pbz2, so not a NATS-Bench folder: %s" % (path, fix))
    try:
        with open(path, "rb") as f:
            head = f.read(len(TORCH_LEGACY_MAGIC))
    except OSError as e:
        raise Fault("%s: cannot read it (%s): check the path and its permissions" % (path, e.strerror))
    name = os.path.basename(path)
    if head.startswith(b"BZh"):
        if name == "meta.pickle.pbz2" or NATS_CELL_RE.match(name):
            raise Fault(
                "%s is one file of a NATS-Bench folder: pass the folder that holds it (%s)"
                % (path, os.path.dirname(os.path.abspath(path)))
            )
        return "bz2", None
    if head.startswith(b"PK\x03\x04"):
        return "torch", "zip"
    if head.startswith(TORCH_LEGACY_MAGIC):
        return "torch", "legacy"
    if head[:1] == b"\x80":
        raise Fault(
            "%s is a plain Python pickle, not a PyTorch .pth or a NATS-Bench .pbz2: pass one of %s" % (path, OFFICIAL)
        )
    if not head:
        raise Fault("%s is empty: download it again (%s)" % (path, OFFICIAL))
    raise Fault(
        "%s is not a NAS-Bench-201 or NATS-Bench file (neither a PyTorch .pth nor a bz2 pickle): pass one of %s"
        % (path, OFFICIAL)
    )


def resolve_format(path, wanted):
    kind, _ = sniff(path)
    found = "nats-tss" if kind in ("nats-dir", "bz2") else "nb201"
    if wanted == "auto":
        return found
    if wanted.startswith("nb201") and found != "nb201":
        raise Fault(
            "%s is a NATS-Bench bz2 pickle, not a NAS-Bench-201 .pth: run with --format nats-tss or --format auto"
            % path
        )
    if wanted == "nats-tss" and found != "nats-tss":
        raise Fault(
            "%s is a PyTorch .pth, not a NATS-Bench pickle: run with --format nb201-v1_0, nb201-v1_1 or auto"
            % path
        )
    return wanted


# ---------------------------------------------------------------------------------------------
# Loading with the official APIs


def numpy_safe_globals(np):
    """numpy's scalar and array types, for torch's restricted unpickler, under both module names
    numpy 1 (numpy.core) and numpy 2 (numpy._core) write into pickles."""
    try:
        multiarray = np._core.multiarray
    except AttributeError:
        multiarray = np.core.multiarray
    allowed = [np.ndarray, np.dtype]
    for fn in ("scalar", "_reconstruct"):
        obj = getattr(multiarray, fn)
        for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
            allowed.append((obj, "%s.%s" % (mod, fn)))
    for t in (np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8, np.uint8, np.bool_):
        allowed.append(type(np.dtype(t)))
    return allowed


def load_nb201(path, trust):
    torch = need("torch", path)
    np = need("numpy", path)
    api_mod = need("nas_201_api", path)
    size_gb = os.path.getsize(path) / 1e9
    say(
        "loading %s (%.1f GB) with nas_201_api.NASBench201API; the official files take minutes and "
        "several times their size in memory" % (path, size_gb)
    )
    if trust:
        # The API calls torch.load without weights_only; this makes that call unrestricted.
        os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    safe = getattr(torch.serialization, "safe_globals", None)
    guard = safe(numpy_safe_globals(np)) if (safe is not None and not trust) else contextlib.nullcontext()
    try:
        with api_output_to_stderr(), guard:
            return api_mod.NASBench201API(path, verbose=False)
    except MemoryError:
        raise Fault(
            "%s: ran out of memory loading it: the official .pth files need several times their size in RAM; "
            "run on a machine with more memory" % path
        )
    except AssertionError as e:
        raise Fault(
            "%s is a PyTorch file but not a NAS-Bench-201 benchmark (the API says: %s): pass "
            "NAS-Bench-201-v1_0-e61699.pth or NAS-Bench-201-v1_1-096897.pth" % (path, one_line(e))
        )
    except Exception as e:  # torch's unpickling and archive errors have no common base class
        text = one_line(e)
        if "Weights only load failed" in text or "weights_only" in text:
            what = re.search(r"Unsupported (?:global|operand)[: ]*(?:GLOBAL )?[\w.]+", text)
            raise Fault(
                "%s: torch's restricted unpickler refused an object in it (%s): if the file is the official "
                "download, rerun with --trust-pickle (lets torch unpickle it unrestricted)"
                % (path, what.group(0) if what else "not a plain dict of results")
            )
        if isinstance(e, (EOFError, RuntimeError, ValueError, OSError)) or type(e).__name__ == "UnpicklingError":
            raise Fault(
                "%s: cannot be read as a PyTorch file (%s): it is damaged, truncated or not a benchmark file; "
                "download it again (%s)" % (path, first_sentence(text), OFFICIAL)
            )
        raise


def load_nats(path, folder):
    nats = need("nats_bench", path)
    say("loading %s with nats_bench.create(..., 'tss', fast_mode=%s)" % (path, folder))
    try:
        with api_output_to_stderr():
            return nats.create(path, "tss", fast_mode=folder, verbose=False)
    except MemoryError:
        raise Fault("%s: ran out of memory loading it: use the -simple folder form instead" % path)
    except Exception as e:
        if isinstance(e, (ValueError, KeyError, EOFError, OSError, TypeError, AttributeError)) or type(
            e
        ).__name__ == "UnpicklingError":
            raise Fault(
                "%s: NATS-Bench's API cannot read it (%s): it is damaged or not a NATS-Bench topology file; "
                "pass NATS-tss-v1_0-3ffb9.pickle.pbz2 or the folder NATS-tss-v1_0-3ffb9-simple"
                % (path, first_sentence(one_line(e)))
            )
        raise


def one_line(e):
    text = " ".join(str(e).split())
    return text or type(e).__name__


def first_sentence(text):
    return text.split(". ")[0][:200]


def check_cells(api, path):
    """The benchmark's cells must be NAS-Bench-201 cells (NATS-Bench's size space has other strings)."""
    archs = api.meta_archs
    bad = next((a for a in archs if not (isinstance(a, str) and ARCH_RE.match(a))), None)
    if bad is not None:
        size_space = isinstance(bad, str) and re.match(r"^\d+(:\d+)+$", bad)
        fix = (
            "this is NATS-Bench's size search space (sss); pwsnas imports the topology space, "
            "NATS-tss-v1_0-3ffb9" if size_space else "pass one of " + OFFICIAL
        )
        raise Fault("%s: its cell %r is not a NAS-Bench-201 cell string: %s" % (path, bad, fix))


def nats_folder_cells(api, path):
    """The cells a NATS-Bench folder holds a file for (the API's own two names: 000042 and 42)."""
    found = set()
    for name in os.listdir(path):
        m = NATS_CELL_RE.match(name)
        if m and int(m.group(1)) < len(api.meta_archs):
            found.add(int(m.group(1)))
    return sorted(found)


# ---------------------------------------------------------------------------------------------
# Reading the measurements


def absent(err, dataset, hp):
    """Whether `err` from get_more_info means 'no such data set / schedule for this cell'."""
    return isinstance(err, KeyError) and len(err.args) == 1 and err.args[0] in (dataset, hp)


def fmt(value, path, index, column):
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise Fault("%s: cell %d, %s: the API returned %r, not a number: the file is damaged" % (path, index, column, value))
    if v != v or v in (float("inf"), float("-inf")):
        raise Fault("%s: cell %d, %s: the API returned %r: the file is damaged" % (path, index, column, value))
    return repr(round(v, 6))


def measure(api, path, cells, folder_mode):
    """{index: {column: text}} for every cell, through api.get_more_info (see the module docs)."""
    rows = {}
    total = len(cells)
    for n, index in enumerate(cells):
        row = {}
        for hp in SCHEDULES:
            for dataset in DATASETS:
                try:
                    with api_output_to_stderr():
                        info = api.get_more_info(index, dataset, iepoch=None, hp=hp, is_random=False)
                except Exception as e:
                    if absent(e, dataset, hp):
                        continue
                    if isinstance(e, MemoryError):
                        raise Fault("%s: ran out of memory at cell %d: run on a machine with more memory" % (path, index))
                    where = path
                    if folder_mode:
                        names = ["%06d.pickle.pbz2" % index, "%d.pickle.pbz2" % index]
                        where = os.path.join(path, next((n for n in names if os.path.isfile(os.path.join(path, n))), names[0]))
                    raise Fault(
                        "%s: cell %d, data set %s, %s epochs: the benchmark's API cannot read it (%s: %s): the file "
                        "is damaged or of another version; download it again (%s)"
                        % (where, index, dataset, hp, type(e).__name__, first_sentence(one_line(e)), OFFICIAL)
                    )
                for ds, key, name in MEASUREMENTS:
                    if ds == dataset:
                        column = "%s@%s" % (name, hp)
                        text = fmt(info.get(key), path, index, column)
                        if text is not None:
                            row[column] = text
        rows[index] = row
        if folder_mode:
            # Fast mode keeps every cell it loaded; the -full folder's cells carry weights, so drop
            # each one once read to keep memory flat.
            api.arch2infos_dict.pop(index, None)
            api.evaluated_indexes.discard(index)
        if (n + 1) % 1000 == 0 or n + 1 == total:
            say("%d/%d cells" % (n + 1, total))
    return rows


def nb201_version(rows):
    """v1_1 holds every data set at 12 epochs, v1_0 only CIFAR-10-valid."""
    at12 = {c for row in rows.values() for c in row if c.endswith("@12")}
    return "nb201-v1_1" if at12 - {"cifar10-valid@12"} else "nb201-v1_0"


# ---------------------------------------------------------------------------------------------
# Writing


def write_table(out, api, rows, columns):
    folder = os.path.dirname(os.path.abspath(out))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(out) + ".", suffix=".partial", dir=folder)
    try:
        with os.fdopen(fd, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["index", "arch"] + columns)
            for index in sorted(rows):
                row = rows[index]
                w.writerow([index, api.meta_archs[index]] + [row.get(c, "") for c in columns])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_out(out, src):
    folder = os.path.dirname(os.path.abspath(out)) or "."
    if os.path.isdir(out):
        raise Fault("--out %s is a folder: name the CSV file to write, e.g. %s" % (out, os.path.join(out, "nb201.csv")))
    if not os.path.isdir(folder):
        raise Fault("--out %s: the folder %s does not exist: create it first" % (out, folder))
    if not os.access(folder, os.W_OK):
        raise Fault("--out %s: the folder %s is not writable: choose another --out" % (out, folder))
    if os.path.exists(src) and os.path.exists(out) and os.path.samefile(src, out):
        raise Fault("--out %s is the input file: name another file for the table" % out)


# ---------------------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise Fault("%s: run `%s --in PATH --out TABLE.csv [--format %s]`" % (message, PROG, "|".join(FORMATS)))


def run(argv):
    p = Parser(prog=PROG, description="NAS-Bench-201 / NATS-Bench (topology) -> pwsnas benchmark table (CSV)")
    p.add_argument("--in", dest="src", required=True, help="the official file or NATS folder")
    p.add_argument("--out", required=True, help="the CSV table to write")
    p.add_argument("--format", default="auto", help="|".join(FORMATS))
    p.add_argument("--trust-pickle", action="store_true", help="unrestricted torch.load for an official .pth")
    a = p.parse_args(argv)
    if a.format not in FORMATS:
        raise Fault("--format %s: unknown format: use one of %s" % (a.format, ", ".join(FORMATS)))
    src = a.src
    fmt_name = resolve_format(src, a.format)
    check_out(a.out, src)

    if fmt_name == "nats-tss":
        folder = os.path.isdir(src)
        api = load_nats(src, folder)
        check_cells(api, src)
        cells = nats_folder_cells(api, src) if folder else sorted(api.evaluated_indexes)
    else:
        api = load_nb201(src, a.trust_pickle)
        check_cells(api, src)
        folder = False
        cells = sorted(api.evaluated_indexes)
    if not cells:
        raise Fault("%s holds no evaluated cell: download it again (%s)" % (src, OFFICIAL))
    say("reading %d cells" % len(cells))
    rows = measure(api, src, cells, folder)

    if fmt_name != "nats-tss":
        found = nb201_version(rows)
        if fmt_name != "nb201" and fmt_name != found:  # "nb201": --format auto
            raise Fault(
                "%s: --format %s, but the file is %s (its 12-epoch schedule holds %s): run with --format %s or auto"
                % (src, fmt_name, found, "every data set" if found == "nb201-v1_1" else "CIFAR-10-valid only", found)
            )
        fmt_name = found
    present = {c for row in rows.values() for c in row}
    columns = ["%s@%s" % (name, hp) for hp in SCHEDULES for _, _, name in MEASUREMENTS if "%s@%s" % (name, hp) in present]
    if not columns:
        raise Fault("%s: no cell has any accuracy the importer knows: the file is damaged; download it again" % src)
    blank = {c: sum(1 for row in rows.values() if c not in row) for c in columns}
    write_table(a.out, api, rows, columns)
    print(
        json.dumps(
            {
                "format": fmt_name,
                "rows": len(rows),
                "columns": columns,
                "out": os.path.abspath(a.out),
                "in": os.path.abspath(src),
                "blank_cells": {c: n for c, n in blank.items() if n},
            }
        ),
        flush=True,
    )
    say("wrote %s: %d cells, columns %s" % (a.out, len(rows), ", ".join(columns)))


def main(argv=None):
    # The APIs and torch warn about things the user cannot act on (pickle protocols, deprecations);
    # stderr carries progress and, on a fault, the one line that says what to do.
    warnings.simplefilter("ignore")
    try:
        run(sys.argv[1:] if argv is None else argv)
    except Fault as f:
        print("[%s] error: %s" % (PROG, f), file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("[%s] interrupted; nothing written" % PROG, file=sys.stderr, flush=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
