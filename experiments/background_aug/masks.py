"""User-supplied foreground masks for ImageNet: the file format, the packing step, and the
source that attaches them to the training records.

Format (what you supply): one PNG per training image, `MASKS_DIR/<stem>.png`, where <stem> is
the image's TFDS `file_name` without its extension (imagenet2012 train: n01440764_10026.JPEG
→ n01440764_10026.png). 8-bit grayscale (other modes are converted), the image's own height
and width, foreground where the value is ≥ 128 (saliency binarised at 0.5, spec §2).

Pack them once per split (progress and ETA on stdout; refuses to overwrite a pack):

    python -m experiments.background_aug.masks --masks_dir=MASKS_DIR --out_dir=PACKED \
      --split=train

PACKED/<split>.array_record then holds the binarised masks as PNG bytes, one record each, and
PACKED/<split>.keys.json their stems in record order. With

    data.name = "experiments.background_aug.masks:source"
    data.bgaug.masks_dir = PACKED     data.bgaug.base_dataset = "imagenet2012"

the train split's records carry `fg_mask` [H, W, 1] in {0, 1} (and their `index`, so a donor
is never the image itself). An image without a mask, or a mask of another size, stops the run
with the file to fix when that image is first read: the first record is checked before
training, the others as they are drawn (checking all would decode the whole split first).
Other splits are the base dataset's.
"""

from __future__ import annotations

import dataclasses
import io
import json
import pathlib
import sys
import time

import numpy as np
from PIL import Image

from lib.data import sources
from lib.data.errors import DatasetError

THRESHOLD = 128  # foreground: values ≥ 128 of 255 (0.5)


def pack_paths(out_dir, split: str) -> tuple[pathlib.Path, pathlib.Path]:
    out_dir = pathlib.Path(out_dir)
    return out_dir / f"{split}.array_record", out_dir / f"{split}.keys.json"


def binarise(png: Image.Image) -> np.ndarray:
    """[H, W] uint8 in {0, 1}: foreground where the grayscale value is ≥ THRESHOLD."""
    return (np.asarray(png.convert("L")) >= THRESHOLD).astype(np.uint8)


def _png_bytes(mask: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(mask * 255).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def pack(masks_dir, out_dir, split: str, report=print) -> int:
    """Binarises every MASKS_DIR/*.png into OUT_DIR/<split>.array_record with its stems in
    <split>.keys.json; returns the count. Writes beside the target and renames, so a failed
    pack leaves nothing half-written, and an existing pack is never overwritten."""
    from array_record.python.array_record_module import ArrayRecordWriter

    masks_dir = pathlib.Path(masks_dir)
    if not masks_dir.is_dir():
        raise DatasetError(f"--masks_dir={masks_dir} is not a directory; point it at the "
                           "folder of <file_name stem>.png masks")
    files = sorted(masks_dir.glob("*.png"))
    if not files:
        raise DatasetError(f"{masks_dir} holds no .png masks; the format is one "
                           "<file_name stem>.png per image (see experiments/background_aug/"
                           "masks.py)")
    records, keys = pack_paths(out_dir, split)
    existing = [p for p in (records, keys) if p.exists()]
    if existing:
        raise DatasetError(f"{existing[0]} exists; packing would overwrite it. Remove it or "
                           "choose another --out_dir")
    records.parent.mkdir(parents=True, exist_ok=True)
    partial = records.with_name(records.name + ".partial")
    writer = ArrayRecordWriter(str(partial), "group_size:1")
    start, every = time.perf_counter(), max(1, len(files) // 20)
    try:
        for i, path in enumerate(files):
            try:
                mask = binarise(Image.open(path))
            except OSError as e:
                raise DatasetError(f"{path} is not a readable PNG ({e}); replace it") from e
            writer.write(_png_bytes(mask))
            if (i + 1) % every == 0 or i + 1 == len(files):
                rate = (i + 1) / max(time.perf_counter() - start, 1e-9)
                report(f"packed {i + 1}/{len(files)} masks | {rate:.0f} masks/s | "
                       f"ETA {(len(files) - i - 1) / rate:.0f}s")
    except BaseException:
        writer.close()
        partial.unlink(missing_ok=True)
        raise
    writer.close()
    keys.write_text(json.dumps([p.stem for p in files]))
    partial.rename(records)
    return len(files)


class Pack:
    """A split's packed masks, by stem; opened lazily in each process that reads it."""

    def __init__(self, path: str):
        self.path, self._source, self._index = path, None, None

    def __getstate__(self):  # data-loader workers reopen the file themselves
        return {"path": self.path}

    def __setstate__(self, state):
        self.__init__(state["path"])

    @property
    def index(self) -> dict[str, int]:
        if self._index is None:
            keys = pathlib.Path(self.path[:-len(".array_record")] + ".keys.json")
            self._index = {stem: i for i, stem in enumerate(json.loads(keys.read_text()))}
        return self._index

    def _read(self, i: int) -> bytes:
        if self._source is None:
            from array_record.python.array_record_data_source import ArrayRecordDataSource

            self._source = ArrayRecordDataSource([self.path])
        return self._source[i]

    def mask(self, stem: str) -> np.ndarray:
        """[H, W, 1] float32 in {0, 1}."""
        i = self.index.get(stem)
        if i is None:
            raise DatasetError(
                f"no mask for the image {stem!r} in {self.path}; add {stem}.png to the masks "
                "folder and pack again (python -m experiments.background_aug.masks)")
        png = Image.open(io.BytesIO(self._read(i)))
        return binarise(png).astype(np.float32)[..., None]


def open_pack(masks_dir, split: str) -> Pack:
    records, keys = pack_paths(masks_dir, split)
    missing = [p for p in (records, keys) if not p.is_file()]
    if missing:
        raise DatasetError(
            f"{missing[0]} not found: data.bgaug.masks_dir must hold the packed masks of the "
            f"{split!r} split; pack them with python -m experiments.background_aug.masks "
            f"--masks_dir=<your PNGs> --out_dir={masks_dir} --split={split}")
    return Pack(str(records))


def _stem(file_name) -> str:
    name = file_name.decode() if isinstance(file_name, bytes) else str(file_name)
    return pathlib.PurePath(name).stem


class MaskedRecords:
    """Records (each with a 'file_name') with their mask added as 'fg_mask'."""

    def __init__(self, records, pack: Pack):
        self._records, self._pack = records, pack

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index: int) -> dict:
        record = dict(self._records[index])
        stem = _stem(record.pop("file_name"))
        mask = self._pack.mask(stem)
        image_hw = np.asarray(record["image"]).shape[:2]
        if mask.shape[:2] != image_hw:
            raise DatasetError(f"the mask of {stem!r} in {self._pack.path} is "
                               f"{mask.shape[0]}x{mask.shape[1]}, its image {image_hw[0]}x"
                               f"{image_hw[1]}; a mask must have its image's height and width")
        record["fg_mask"] = mask
        record["index"] = index  # donors are drawn from the other records (j ≠ i)
        return record

    def all_labels(self):
        return self._records.all_labels()

    def stats_images(self):
        return self._records.stats_images()

    def subset(self, indices: np.ndarray) -> MaskedRecords:
        return MaskedRecords(self._records.subset(indices), self._pack)


def source(data_cfg, split_name: str) -> sources.Split:
    """data.bgaug.base_dataset's split; the train split's records gain their fg_mask."""
    cfg = data_cfg.bgaug
    if split_name != data_cfg.train_split:
        return sources.tfds_split(cfg.base_dataset, split_name, data_cfg.data_dir)
    base = sources.tfds_split(cfg.base_dataset, split_name, data_cfg.data_dir,
                              keys=("file_name",))
    return dataclasses.replace(base, records=MaskedRecords(base.records,
                                                           open_pack(cfg.masks_dir, split_name)),
                               spatial=("fg_mask",))


def main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m experiments.background_aug.masks",
                                     description="Packs one split's PNG masks for training.")
    parser.add_argument("--masks_dir", required=True, help="folder of <stem>.png masks")
    parser.add_argument("--out_dir", required=True, help="where <split>.array_record goes")
    parser.add_argument("--split", default="train", help="the TFDS split the masks belong to")
    args = parser.parse_args(argv)
    try:
        count = pack(args.masks_dir, args.out_dir, args.split)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"Done: {count} masks in {pack_paths(args.out_dir, args.split)[0]}.")


if __name__ == "__main__":
    main(sys.argv[1:])
