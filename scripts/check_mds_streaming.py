"""Read an MDS build (``--output mds``) with the real ``streaming.StreamingDataset`` and rewrite its first val
shard with streaming's own ``MDSWriter``, comparing bytes. Run it where ``mosaicml-streaming`` is installed (it
pulls torch; keep it in its own venv):

    python -m venv /tmp/mdsvenv && /tmp/mdsvenv/bin/pip install torch mosaicml-streaming
    /tmp/mdsvenv/bin/python scripts/check_mds_streaming.py OUT
"""

from __future__ import annotations

import csv
import json
import struct
import sys
import tempfile

import streaming
from streaming import MDSWriter, StreamingDataset
from streaming.base.format import reader_from_json


def main(out: str) -> int:
    print("streaming", streaming.__version__)
    ok = True
    for split in ("train", "val"):
        with open(f"{out}/{split}.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        dataset = StreamingDataset(local=f"{out}/{split}", shuffle=False, batch_size=1)
        got = [(int(s["y"]), s["x"].size) for s in (dataset[i] for i in range(len(dataset)))]
        want = [(int(r["label"]), (int(r["width"]), int(r["height"]))) for r in rows]
        print(
            split, "samples", len(dataset), "manifest rows", len(rows), "labels and sizes equal:", got == want
        )
        ok &= got == want
    with open(f"{out}/val/index.json") as handle:
        entry = json.load(handle)["shards"][0]
    reader = reader_from_json(f"{out}/val", None, entry)
    with tempfile.TemporaryDirectory() as tmp:
        columns = {"i": "int", "x": "jpeg", "y": "int"}
        with MDSWriter(out=tmp, columns=columns, size_limit=entry["size_limit"]) as writer:
            for i in range(entry["samples"]):
                data = reader.get_sample_data(i)
                (size,) = struct.unpack_from("<I", data, 0)
                sample = reader.get_item(i)
                writer.write({"i": sample["i"], "x": data[12 : 12 + size], "y": sample["y"]})
        with open(f"{tmp}/shard.00000.mds", "rb") as theirs, open(f"{out}/val/shard.00000.mds", "rb") as ours:
            same_bytes = theirs.read() == ours.read()
        with open(f"{tmp}/index.json") as handle:
            same_entry = json.load(handle)["shards"][0] == entry
    print("MDSWriter's shard bytes equal ours:", same_bytes, "; its index entry equals ours:", same_entry)
    return 0 if ok and same_bytes and same_entry else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
