"""Files of `AnytimeRecorder`, written so that a crash loses no row.

`anytime.json` is a JSON array with one row per line:

    [
    {"cycle": 0, "step": 4, ...},
    {"cycle": 1, "step": 12, ...}
    ]

A row is appended in place (the closing bracket is overwritten by the row
and a new bracket) and synced, so a row costs the same at any length. A
crash inside that write leaves a last line cut short: `read` drops it, and
the recorder rewrites both files when it resumes. Whole rewrites (new
columns, resume) go through a unique temporary file in the same folder,
renamed over the old one with the old one's permissions. Non-finite
numbers are written as `null` (strict JSON has no NaN); `anytime.csv`
holds them as `nan`/`inf`.
"""

import csv
import io
import json
import math
import os
import stat
import tempfile

FIELDS = ("cycle", "step", "epoch", "evaluated_step", "evaluated_epoch",
          "wall_time", "learning_rate", "eta", "weight_decay_effective")
TEMPORARY_PREFIX = ".anytime-"
_EMPTY = b"[\n]\n"


class RecordFiles:
    """`anytime.csv` and `anytime.json` in `log_dir`."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.fields = None

    def path(self, extension):
        return os.path.join(self.log_dir, f"anytime.{extension}")

    def read(self):
        """The rows of an earlier run, or []; a clear error if unreadable."""
        path = self.path("json")
        if not os.path.exists(path):
            if _csv_rows(self.path("csv")):
                raise ValueError(
                    f"Argument `log_dir` holds {self.path('csv')} but not "
                    f"{path}, the record AnytimeRecorder resumes from; it "
                    "will not overwrite the CSV. Move it away or pass another "
                    f"folder. Received: log_dir={self.log_dir!r}")
            return []
        with open(path, "rb") as file:
            data = file.read()
        try:
            rows = json.loads(data)
        except ValueError as error:
            rows = _repair(data, path, error)
        if not isinstance(rows, list):
            raise ValueError(f"{path} must hold a JSON array of rows; "
                             f"found {type(rows).__name__}. Move it away or "
                             "pass another `log_dir`.")
        for number, row in enumerate(rows):
            if not (isinstance(row, dict) and isinstance(row.get("step"), int)
                    and isinstance(row.get("cycle"), int)):
                raise ValueError(f"{path}: row {number} must be an object with "
                                 f"integer `cycle` and `step`. Found: {row!r}")
        return rows

    def has_results(self):
        return os.path.exists(self.path("json")) or bool(_csv_rows(self.path("csv")))

    def append(self, records):
        """Writes the last of `records`; rewrites both files on new columns."""
        row = records[-1]
        if self.fields is None or not set(row) <= set(self.fields):
            self.rewrite(records)
            return
        line = _json_line(row)
        with open(self.path("json"), "r+b") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(size - 3, 0))
            if file.read() != b"\n]\n" or size < len(_EMPTY):
                layout_ok = False  # not the layout we wrote
            else:
                layout_ok = True
                if size == len(_EMPTY):
                    file.seek(size - 2)
                    file.write(line + b"\n]\n")
                else:
                    file.seek(size - 3)
                    file.write(b",\n" + line + b"\n]\n")
                file.flush()
                os.fsync(file.fileno())
        if not layout_ok:
            self.rewrite(records)
            return
        with open(self.path("csv"), "a", newline="") as file:
            csv.DictWriter(file, self.fields).writerow(row)
            file.flush()
            os.fsync(file.fileno())

    def rewrite(self, records):
        """Replaces both files with `records`, each atomically."""
        os.makedirs(self.log_dir, exist_ok=True)
        fields = list(FIELDS) if records else None
        for row in records:
            fields += [name for name in row if name not in fields]
        self.fields = fields
        text = io.StringIO(newline="")
        if fields:
            writer = csv.DictWriter(text, fields)
            writer.writeheader()
            writer.writerows(records)
        write_atomic(self.path("csv"), text.getvalue().encode())
        body = b",\n".join(_json_line(row) for row in records)
        write_atomic(self.path("json"), b"[\n" + body + b"\n]\n" if records else _EMPTY)


def remove_temporary_files(folder):
    """Deletes temporary files a crashed write left in `folder`."""
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        legacy = name == "anytime.json.tmp" and not os.path.islink(path)
        if name.startswith(TEMPORARY_PREFIX) or legacy:
            os.remove(path)


def write_atomic(path, data):
    """Writes `data` (bytes) to `path` through a unique temporary file."""
    folder = os.path.dirname(path) or "."
    descriptor, temporary = tempfile.mkstemp(
        dir=folder, prefix=TEMPORARY_PREFIX, suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def read_json(path):
    """A small JSON file of ours, or None if absent; a clear error if bad."""
    try:
        with open(path) as file:
            return json.load(file)
    except FileNotFoundError:
        return None
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON ({error}). Move it away "
                         "or use another folder.") from None


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _finite(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _json_line(row):
    return json.dumps({name: _finite(value) for name, value in row.items()},
                      allow_nan=False).encode()


def _repair(data, path, error):
    """Rows of a file whose last append was cut short by a crash."""
    lines = data.split(b"\n")
    if lines[0] != b"[":
        raise ValueError(f"{path} is not valid JSON ({error}); AnytimeRecorder "
                         "cannot resume from it. Move it away or pass another "
                         "`log_dir`.") from None
    rows = []
    for number, line in enumerate(lines[1:], 1):
        line = line.rstrip(b",")
        if line in (b"]", b""):
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            if any(rest.strip() not in (b"", b"]") for rest in lines[number + 1:]):
                raise ValueError(f"{path} is not valid JSON ({error}) at row "
                                 f"{number - 1}; AnytimeRecorder cannot resume "
                                 "from it. Move it away or pass another "
                                 "`log_dir`.") from None
            break  # the row being appended when a crash came: not recorded
    return rows


def _csv_rows(path):
    try:
        with open(path, newline="") as file:
            return sum(1 for _ in csv.reader(file)) > 1
    except FileNotFoundError:
        return False
