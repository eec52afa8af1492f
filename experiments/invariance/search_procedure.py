"""The similarity search of invariance.md §2.4 at paper scale: which AutoAugment transformations
make two images of one class more alike, class by class (config.procedure =
"experiments.invariance.search_procedure:run").

    workdir/train/                  lib.train.run, where search.train is set
    workdir/search_classes/<c>.npz  class c's similarities: base [n] = s(i, j), moved [T, n] =
                                    s(i, T(j)), the candidate names, the settings they were
                                    computed with (a re-run skips the classes it finds)
    workdir/search.json             {"settings", "values"}: values holds "stats" {class:
                                    {candidate: {statistic: value}}}, "top" {class: candidates
                                    best first}, "appearance_share_top{k}" {class: fraction},
                                    "pairs" {class: count}, "candidates", the means and counts
    workdir/search_factors.png      per class, the leading candidates' proportion_boosted,
                                    appearance vs geometric
    workdir/config.json, results.json   search/appearance_share_top{k} (the mean over classes;
                                    claim I8), search/distinct_top{k}_sets, search/classes,
                                    search/pairs, and the training results where it trained

The pairs follow the paper's code (similarity_search_experiments/similarity_search.py,
image_similarity/load_pairs.py): per class its images in split order (no shuffling), in
batches of search.pair_batch = 32 with a partial last batch dropped; each batch's first half
pairs with its second half, image k with image 16 + k. The code stops after the batch that
reaches its maximum (1,008 pairs for 1,000: search.whole_batches); the spec's "up to 1,000"
(the default) cuts at exactly search.pairs_per_class. ImageNet's classes hold 732–1,300 train
images, so no class reaches 1,000 pairs either way. The split order is the source's: the code
read class folders in file-name order, TFDS's imagenet2012 has its own fixed order.

Images: the eval preprocessing as uint8 (resize 256 → centre crop 224 where data.image_size is
224; native size where the run does not resize), so the candidates act on pixels as PIL does
in the code; they are normalised (data.normalization) on device before the model. Every
candidate (lib.data.autoaugment.candidates: 63 with search.candidates_per_index, 50 without;
index i → i/9 of the op's range, the code's linspace) transforms the right image j of every
pair; ops with a random sign (shears, translations, enhance ops) take the sign that search.seed
fixes per (class, candidate, pair) (`signs`), rotation turns counter-clockwise as in the code.
s is the cosine similarity of the embeddings (the features=True output search.feature);
experiments.invariance.search gives the per-(class, T) statistics (`statistics`) and the
per-class order (`rank`, by search.rank_by).

Host threads (search.workers) read images and apply the PIL ops a batch ahead of the device;
each process of a multi-process run transforms its rows of every global batch. Progress lines
give images/s and the ETA. The search is resumable class by class, and search.json is read
back while its settings are unchanged.
"""

from __future__ import annotations

import io
import json
import math
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from experiments.invariance import augment, search
from experiments.invariance.procedure import check_feature
from lib import analysis, files, procedure, sharding, train
from lib import config as config_lib
from lib.data import autoaugment, pipeline, preprocess, sources
from lib.data.records import ArrayRecords

GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Rescale")
STATISTICS = tuple(search.statistics(np.ones(1), np.ones(1)))
CLASSES_DIR = "search_classes"
PLOT_FILE = "search_factors.png"
PLOT_TOP = 10  # bars per class in the plot
LEFT, RIGHT = -2, -1  # the slots of a pair's clean images in the job stream; candidates: 0..T-1


def candidate_name(op: str, index: int | None) -> str:
    """`{op}_{index}`; a magnitude-free op listed once (index None) is just `op`."""
    return op if index is None else f"{op}_{index}"


def is_geometric(name: str) -> bool:
    return augment.parse_candidate(name)[0] in GEOMETRIC


def candidates(per_index: bool) -> dict[str, tuple[str, int | None]]:
    """{name: (op, index)} of the search's candidates, in autoaugment.candidates' order."""
    return {candidate_name(op, index): (op, index)
            for op, index in autoaugment.candidates(per_index=per_index)}


def class_pairs(labels: np.ndarray, classes, pair_batch: int, cap: int,
                whole_batches: bool = False) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{class: (left, right)} record indices of each class's pairs (see the module docstring):
    the class's records in order, whole batches of `pair_batch`, first half against second
    half, at most `cap` pairs (whole_batches: whole batches until at least `cap`)."""
    half = pair_batch // 2
    keep = math.ceil(cap / half) * half if whole_batches else cap
    out = {}
    for c in classes:
        members = np.flatnonzero(labels == c)
        batches = members[:len(members) // pair_batch * pair_batch].reshape(-1, pair_batch)
        out[int(c)] = (batches[:, :half].ravel()[:keep], batches[:, half:].ravel()[:keep])
    return out


def signs(seed: int, label: int, count: int, pairs: int) -> np.ndarray:
    """[count, pairs] of ±1: row t from default_rng([seed, label, t]).choice([-1, 1], pairs)."""
    return np.stack([np.random.default_rng([seed, label, t]).choice([-1, 1], size=pairs)
                     for t in range(count)])


def appearance_shares(top: dict[str, list[str]], k: int) -> dict[str, float]:
    """{class: fraction of its top-k candidates that are appearance (not geometric) ops}."""
    return {c: float(np.mean([not is_geometric(n) for n in names[:k]]))
            for c, names in top.items()}


def distinct_sets(top: dict[str, list[str]], k: int) -> int:
    """How many different top-k sets (order ignored) the classes have: the class count when
    no two classes share one, 1 when all do."""
    return len({frozenset(names[:k]) for names in top.values()})


def summarise(stats: dict, pairs: dict, rank_by, k: int) -> dict:
    """search.json's values from the per-class statistics."""
    top = {c: search.rank(per, tuple(rank_by)) for c, per in stats.items()}
    shares = appearance_shares(top, k)
    names = list(next(iter(stats.values())))
    return {"stats": stats, "top": top, "pairs": pairs, "candidates": names,
            f"appearance_share_top{k}": shares,
            f"appearance_share_top{k}_mean": float(np.mean(list(shares.values()))),
            f"distinct_top{k}_sets": distinct_sets(top, k)}


class Images:
    """Record index -> the record's image at the eval preprocessing, uint8 HWC."""

    def __init__(self, split: sources.Split, size: int):
        self.records, self.size, self.max_value = split.records, size, split.max_value

    def __call__(self, index: int) -> np.ndarray:
        image = augment.to_uint8(np.asarray(self.records[int(index)]["image"]), self.max_value)
        return preprocess.resize_center_crop(image, self.size) if self.size else image


def split_labels(records, workers: int) -> np.ndarray:
    """Every record's label in split order: in-memory splits at once, others (TFDS: each
    record decoded) by `workers` threads."""
    if isinstance(records, ArrayRecords):
        return np.asarray(records.labels)
    with ThreadPoolExecutor(workers) as pool:
        return np.fromiter(pool.map(lambda i: int(records[i]["label"]), range(len(records)),
                                    chunksize=256), np.int64, len(records))


def _settings(config, keys) -> dict:
    cfg = config.search
    return json.loads(json.dumps({
        "search": {k: cfg[k] for k in keys},
        "split": cfg.split or config.data.train_split,
        "data": {k: config.data[k] for k in ("name", "data_dir", "image_size", "pool",
                                               "normalization")},
        "model": config.model.to_dict(), "init": config.init.to_dict(), "seed": config.seed}))


SIMILARITY_KEYS = ("train", "pair_batch", "pairs_per_class", "whole_batches",
                   "candidates_per_index", "feature", "seed")


def similarity_settings(config) -> dict:
    """What a class's similarities depend on (a class file with other settings is redone)."""
    return _settings(config, SIMILARITY_KEYS)


def search_settings(config) -> ml_collections.ConfigDict:
    """What search.json depends on."""
    return ml_collections.ConfigDict(_settings(config, (*SIMILARITY_KEYS, "classes",
                                                         "rank_by", "top_k")))


class Plan:
    """Everything the search needs, checked before anything runs."""

    def __init__(self, config):
        cfg = config.search
        if config.data.pool != 1:
            raise config_lib.ConfigError(f"data.pool={config.data.pool}: the search applies "
                                         "PIL ops to the images' uint8 pixels; use pool=1")
        if cfg.pair_batch % 2:
            raise config_lib.ConfigError(f"search.pair_batch={cfg.pair_batch} must be even: "
                                         "each batch's first half pairs with its second half")
        unknown = [k for k in cfg.rank_by if k not in STATISTICS]
        if unknown or not cfg.rank_by:
            raise config_lib.ConfigError(f"search.rank_by={tuple(cfg.rank_by)}; valid "
                                         f"statistics: {', '.join(STATISTICS)}")
        self.candidates = candidates(cfg.candidates_per_index)
        if cfg.top_k > len(self.candidates):
            raise config_lib.ConfigError(f"search.top_k={cfg.top_k} exceeds the "
                                         f"{len(self.candidates)} candidates")
        self.trainer = train.Trainer(config)
        check_feature(self.trainer, cfg.feature, "search.feature")
        sharding.check_batch_divides(self.trainer.mesh, cfg.batch_size, what="search.batch_size")
        split_name = cfg.split or config.data.train_split
        split = sources.open_split(config.data, "eval", split_name)
        if not split.num_classes:
            raise config_lib.ConfigError(f"search.split={split_name!r} of {config.data.name} "
                                         "has no class labels: the search pairs images of "
                                         "one class")
        wrong = [c for c in cfg.classes if c >= split.num_classes]
        if wrong:
            raise config_lib.ConfigError(f"search.classes {wrong} are not classes of "
                                         f"{config.data.name} (0..{split.num_classes - 1})")
        self.images = Images(split, config.data.image_size)
        self.shape = self.images(0).shape
        if self.shape != tuple(self.trainer.setup.info.image_shape):
            raise config_lib.ConfigError(
                f"the search's images are {self.shape} but the model takes "
                f"{tuple(self.trainer.setup.info.image_shape)}: set data.image_size to the "
                "model's input size")
        labels = split_labels(split.records, cfg.workers)
        classes = tuple(cfg.classes) or tuple(range(split.num_classes))
        self.pairs = class_pairs(labels, classes, cfg.pair_batch, cfg.pairs_per_class,
                                 cfg.whole_batches)
        empty = [c for c, (left, _) in self.pairs.items() if not len(left)]
        if empty:
            raise config_lib.ConfigError(
                f"classes {empty[:10]}{' …' if len(empty) > 10 else ''} of {split_name!r} have "
                f"fewer than search.pair_batch={cfg.pair_batch} images, so no pair: lower "
                "search.pair_batch or leave them out with search.classes")
        mean, std = pipeline.normalization_stats(config.data)
        self.scale, self.shift = preprocess.normalizer(255.0, mean, std)


def run(config: ml_collections.ConfigDict, workdir) -> dict:
    plan = Plan(config)
    workdir = files.as_path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if config.search.train:
        results = train.run(config, workdir / "train")
        state = plan.trainer.place(train.load_final(workdir / "train")[2])
    else:  # the embedder's top-1: a check that given (e.g. converted) weights loaded right
        state = plan.trainer.starting_state()[0]
        results = plan.trainer.evaluate(state)
    cfg, k = config.search, config.search.top_k
    values = procedure.evaluation(workdir / "search.json", search_settings(config),
                                  lambda: compute(plan, state, config, workdir))
    if jax.process_index() == 0 and cfg.plot_classes:
        plot(values, cfg.plot_classes, workdir / PLOT_FILE)
    scalars = {f"search/appearance_share_top{k}": values[f"appearance_share_top{k}_mean"],
               f"search/distinct_top{k}_sets": values[f"distinct_top{k}_sets"],
               "search/classes": len(values["top"]),
               "search/pairs": int(sum(values["pairs"].values()))}
    return procedure.finish(workdir, config, {**results, **scalars})


def embedder(trainer, state, feature: str, scale, shift):
    """This process's rows of a global batch of uint8 images -> the float64 embeddings of the
    whole global batch (normalised and embedded on device)."""
    scale, shift = jnp.asarray(scale), jnp.asarray(shift)

    def fn(st, images):
        x = images.astype(jnp.float32) * scale + shift
        return trainer.setup.model(st)(x, train=False, features=True)[1][feature]

    step = jax.jit(fn)

    def embed(local: np.ndarray) -> np.ndarray:
        images = sharding.global_batch({"image": local}, trainer.batch_sharding)["image"]
        out = step(state, images)
        if jax.process_count() > 1:
            out = multihost_utils.process_allgather(out, tiled=True)
        return np.asarray(jax.device_get(out), np.float64)

    return embed


def _load_class(path, settings: str) -> dict | None:
    if not path.exists():
        return None
    with path.open("rb") as f:
        saved = dict(np.load(f))
    return saved if str(saved["settings"]) == settings else None


def compute(plan: Plan, state, config, workdir, log=print) -> dict:
    """Every class's similarities (resuming from the class files), then search.json's values."""
    cfg = config.search
    names = list(plan.candidates)
    settings = json.dumps(similarity_settings(config), sort_keys=True)
    folder = workdir / CLASSES_DIR
    sims = {c: _load_class(folder / f"{c}.npz", settings) for c in plan.pairs}
    todo = [c for c, saved in sims.items() if saved is None]
    embed = embedder(plan.trainer, state, cfg.feature, plan.scale, plan.shift)
    log(f"search: {len(plan.pairs)} classes ({len(plan.pairs) - len(todo)} done before), "
        f"{sum(len(p[0]) for p in plan.pairs.values())} pairs, {len(names)} candidates")
    stream = JobStream(plan, todo, cfg.seed, cfg.batch_size)
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for c, base, moved in stream.similarities(embed, cfg.workers):
        sims[c] = {"base": base, "moved": moved}
        if jax.process_index() == 0:
            buffer = io.BytesIO()
            np.savez(buffer, base=base, moved=moved, names=np.array(names),
                     settings=np.array(settings))
            files.write_bytes_atomic(folder / f"{c}.npz", buffer.getvalue())
        done, elapsed = stream.done, time.perf_counter() - t0
        log(f"search: class {c} done, {done}/{stream.total} images, "
            f"{done / elapsed:.1f} images/s, ETA {elapsed / done * (stream.total - done):.0f} s")
    stats = {str(c): {n: search.statistics(s["base"], s["moved"][t])
                      for t, n in enumerate(names)} for c, s in sims.items()}
    pairs = {str(c): len(left) for c, (left, _) in plan.pairs.items()}
    return summarise(stats, pairs, cfg.rank_by, cfg.top_k)


class JobStream:
    """The images to embed, class by class, pair by pair: the left image, the right one, then
    the right one under each candidate (pair-major, so a left embedding is known before its
    pair's similarities are needed), cut into global batches of `batch_size`."""

    def __init__(self, plan: Plan, classes: list[int], seed: int, batch_size: int):
        self.plan, self.classes, self.batch_size = plan, classes, batch_size
        self.ops = list(plan.candidates.values())
        self.per_pair = len(self.ops) + 2
        counts = [len(plan.pairs[c][0]) * self.per_pair for c in classes]
        self.ends = np.cumsum(counts, dtype=np.int64)
        self.total = int(self.ends[-1]) if classes else 0
        self.signs = {c: signs(seed, c, len(self.ops), len(plan.pairs[c][0])) for c in classes}
        self.done = 0

    def jobs(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(class position, pair, slot) of jobs [start, stop)."""
        g = np.arange(start, stop, dtype=np.int64)
        pos = np.searchsorted(self.ends, g, side="right")
        within = g - np.concatenate([[0], self.ends])[pos]
        return pos, within // self.per_pair, within % self.per_pair + LEFT

    def local_batch(self, b: int, pool: ThreadPoolExecutor) -> np.ndarray:
        """This process's rows of global batch b (zeros past the end)."""
        share = self.batch_size // jax.process_count()
        start = b * self.batch_size + jax.process_index() * share
        pos, pair, slot = self.jobs(start, min(start + share, self.total))
        wanted = {}
        for p, n, s in zip(pos.tolist(), pair.tolist(), slot.tolist()):
            left, right = self.plan.pairs[self.classes[p]]
            wanted[p, n, s == LEFT] = int((left if s == LEFT else right)[n])
        keys = list(wanted)
        loaded = dict(zip(keys, pool.map(self.plan.images, [wanted[k] for k in keys])))

        def one(job):
            p, n, s = job
            image = loaded[p, n, s == LEFT]
            if s < 0:
                return image
            op, index = self.ops[s]
            sign = int(self.signs[self.classes[p]][s, n]) if op in autoaugment.RANDOM_SIGN \
                else None
            return autoaugment.apply(image, op, index, sign=sign)

        out = np.zeros((share, *self.plan.shape), np.uint8)
        for row, image in enumerate(pool.map(one, zip(pos.tolist(), pair.tolist(),
                                                      slot.tolist()))):
            out[row] = image
        return out

    def similarities(self, embed, workers: int):
        """Yields (class, base [n], moved [T, n]) as each class's last image is embedded."""
        if not self.total:
            return
        batches = math.ceil(self.total / self.batch_size)
        left_z, base, moved = {}, {}, {}
        with ThreadPoolExecutor(workers) as pool:
            for b, z in enumerate(map(embed, prefetch(
                    lambda b: self.local_batch(b, pool), batches))):
                start = b * self.batch_size
                stop = min(start + self.batch_size, self.total)
                pos, pair, slot = self.jobs(start, stop)
                z = z[:stop - start]
                for p in np.unique(pos).tolist():
                    c = self.classes[p]
                    if c not in left_z:
                        n = len(self.plan.pairs[c][0])
                        left_z[c] = np.zeros((n, z.shape[1]))
                        base[c], moved[c] = np.zeros(n), np.zeros((len(self.ops), n))
                    rows = pos == p
                    n_, s_, z_ = pair[rows], slot[rows], z[rows]
                    is_left = s_ == LEFT
                    left_z[c][n_[is_left]] = z_[is_left]
                    sim = search.cosine_similarity(left_z[c][n_[~is_left]], z_[~is_left])
                    is_right = s_[~is_left] == RIGHT
                    base[c][n_[~is_left][is_right]] = sim[is_right]
                    moved[c][s_[~is_left][~is_right], n_[~is_left][~is_right]] = sim[~is_right]
                self.done = stop
                for p in np.unique(pos).tolist():
                    if self.ends[p] <= stop:
                        c = self.classes[p]
                        del left_z[c]
                        yield c, base.pop(c), moved.pop(c)


def prefetch(make, count: int, depth: int = 2):
    """make(0), …, make(count − 1), each built in a background thread up to `depth` ahead of
    the consumer (host work overlaps the device's); an error in make is raised here."""
    slots: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def work():
        for i in range(count):
            try:
                item = (make(i), None)
            except BaseException as e:  # handed to the consumer, which raises it
                item = (None, e)
            while not stop.is_set():
                try:
                    slots.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item[1] is not None or stop.is_set():
                return

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        for _ in range(count):
            value, error = slots.get()
            if error is not None:
                raise error
            yield value
    finally:
        stop.set()
        thread.join()


def plot(values: dict, classes: int, path) -> None:
    """Per class (the first `classes`), the leading PLOT_TOP candidates by the search's
    ranking, bar length proportion_boosted, coloured appearance vs geometric."""
    plt = analysis.pyplot()
    shown = sorted(values["top"], key=int)[:classes]
    cols = min(4, len(shown))
    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 0.3 * PLOT_TOP * rows + 1),
                             squeeze=False)
    colours = {False: "tab:blue", True: "tab:orange"}
    for ax, c in zip(axes.flat, shown):
        names = values["top"][c][:PLOT_TOP][::-1]
        boosted = [values["stats"][c][n]["proportion_boosted"] for n in names]
        ax.barh(names, boosted, color=[colours[is_geometric(n)] for n in names])
        ax.set_xlim(0, 1)
        ax.set_title(f"class {c}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("proportion boosted", fontsize=8)
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[g]) for g in (False, True)]
    axes.flat[0].legend(handles, ["appearance", "geometric"], loc="lower right", fontsize=7)
    analysis.save(fig, path)
