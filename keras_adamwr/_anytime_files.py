"""CSV and JSON files of `AnytimeRecorder`, written so a crash loses nothing."""

import csv
import json
import os

FIELDS = ("cycle", "step", "epoch", "evaluated_step", "evaluated_epoch",
          "wall_time", "learning_rate", "eta", "weight_decay_effective")


class RecordFiles:
    """`anytime.csv` (appended row by row) and `anytime.json` (replaced
    atomically) in `log_dir`."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.fields = None

    def path(self, extension):
        return os.path.join(self.log_dir, f"anytime.{extension}")

    def read(self):
        """The rows of an earlier run, or []."""
        if not os.path.exists(self.path("json")):
            return []
        with open(self.path("json")) as file:
            return json.load(file)

    def append(self, records):
        """Writes the last of `records`; rewrites both files on new columns."""
        row = records[-1]
        if self.fields is None or not set(row) <= set(self.fields):
            self.rewrite(records)
            return
        with open(self.path("csv"), "a", newline="") as file:
            csv.DictWriter(file, self.fields).writerow(row)
        self._write_json(records)

    def rewrite(self, records):
        os.makedirs(self.log_dir, exist_ok=True)
        fields = list(FIELDS) if records else None
        for row in records:
            fields += [name for name in row if name not in fields]
        self.fields = fields
        with open(self.path("csv"), "w", newline="") as file:
            if fields:
                writer = csv.DictWriter(file, fields)
                writer.writeheader()
                writer.writerows(records)
        self._write_json(records)

    def _write_json(self, records):
        temporary = self.path("json.tmp")
        with open(temporary, "w") as file:
            json.dump(records, file, indent=1)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path("json"))
