"""Fixtures for `depthlens compare` / `report A.h5 B.h5`: checkpoints that cannot be
compared with the golden `official` one although they have as many blocks.

    python tools/make_compare_fixtures.py

writes Tests/Fixtures/compare/official-5-classes.ckpt.h5: `official` with a classifier of 5
classes instead of 7 (the first 5 rows of fc), a valid checkpoint that a comparison with
`official` must refuse, naming both files and the classes.
"""
import json
import os
import shutil

import h5py

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SOURCE = os.path.join(ROOT, "Tests/Fixtures/golden/official.ckpt.h5")
OUT = os.path.join(ROOT, "Tests/Fixtures/compare")


def main():
    os.makedirs(OUT, exist_ok=True)
    target = os.path.join(OUT, "official-5-classes.ckpt.h5")
    shutil.copyfile(SOURCE, target)
    with h5py.File(target, "r+") as f:
        architecture = json.loads(f.attrs["architecture"])
        architecture["num_classes"] = 5
        f.attrs["architecture"] = json.dumps(architecture, sort_keys=True)
        for name in ["tensors/fc.weight", "tensors/fc.bias"]:
            kept = f[name][:5]
            del f[name]
            f.create_dataset(name, data=kept)
        provenance = json.loads(f.attrs["provenance"])
        provenance["tool"] = "tools/make_compare_fixtures.py"
        f.attrs["provenance"] = json.dumps(provenance, sort_keys=True)
    print("wrote", target)


if __name__ == "__main__":
    main()
