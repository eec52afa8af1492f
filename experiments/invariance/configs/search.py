"""Paper scale (invariance.md §2.4): the similarity search for each class's factors of
variation on imagenet2012 train (experiments.invariance.search_procedure).

Per class, the same-class pairs of its train images in split order (batches of 32 split in
halves, at most 1,000 pairs; ImageNet's classes give 352–640), at the eval preprocessing
(resize 256 → centre crop 224, uint8); the 63 AutoAugment candidates of the paper's code (the
ImageNet and SVHN policies' (op, index) pairs, magnitude-free ops once per index, 10 rescale
levels) applied to each pair's right image with PIL; cosine similarity of the ResNet-18 GAP
embedding ('pool', 512-d; ViT-B/16: the CLS token 'pre_logits'); the §2.4 statistics per
(class, candidate), ranked by (proportion_boosted, mean Δ). The embedder is the model's starting
state: the paper's default is a ResNet-18 trained without augmentation (train one with
configs/imagenet.py:variant=None and pass its workdir as init.workdir, or set train=True here to
train it in workdir/train first); torchvision's standard-aug weights (converted with
lib.convert) give the code's `resnet18` search, which its per-class augmentation used.

Command (ImageNet prepared with `python -m lib.data.prepare imagenet2012 --data_dir=D`):
    python -m lib.main --config=experiments/invariance/configs/search.py \\
      --workdir=$WORKDIR/search_r18_noaug --config.init.workdir=$WORKDIR/inv_r18_none/train \\
      --config.data.data_dir=D
Per-class augmentation with its result (spec §2.6; the standard recipe):
    python -m lib.main \\
      --config=experiments/invariance/configs/imagenet.py:recipe=standard \\
      --workdir=$WORKDIR/perclass --config.procedure= --config.data.data_dir=D \\
      --config.data.augment=experiments.invariance.augment:PerClass \\
      --config.data.invaug.per_class_search=$WORKDIR/search_r18_noaug/search.json
Args: model (resnet18 | vit_b16), train (train the embedder first, with variant and recipe
as in configs/imagenet.py; default False: embed with init.workdir's weights), variant
(default None: no augmentation, the paper's default embedder), recipe, seed, quick (the same
code path on Fashion-MNIST classes 0–2 at 32 px, 16 pairs each, a width-8 ResNet-18 at its
seeded init: seconds).
Hardware: one host with a GPU and 16 cores. Not run at this scale: no wall time has been
measured. An estimate: about 640k pairs × 65 images = 42M embeddings, and 40M PIL ops at about
0.8 ms per op and core (measured for 224 px images on a CPU), so several hours, bound by the
host's threads (search.workers) unless the device is slow.
Reported (claims.py): I8, per-class top-5 factors mostly appearance ops (results key
search/appearance_share_top5 > 0.5) and differing across classes (search/distinct_top5_sets).
"""

from experiments.invariance.configs import imagenet
from lib.config import parse_arg


def get_config(arg=None):
    a = parse_arg(arg, model="resnet18", train=False, variant="None", recipe="", seed=0,
                  quick=False)
    recipe = f",recipe={a.recipe}" if a.recipe else ""
    c = imagenet.get_config(f"model={a.model},variant={a.variant},train={a.train},"
                            f"seed={a.seed},quick={a.quick}{recipe}")
    c.procedure = "experiments.invariance.search_procedure:run"
    c.search.train = a.train
    c.search.feature = imagenet.MEASURED[a.model][0]
    c.search.batch_size = 512
    c.search.workers = 16
    if a.quick:
        c.search.classes = (0, 1, 2)
        c.search.pairs_per_class = 16
        c.search.batch_size = 64
        c.search.workers = 2
        c.search.plot_classes = 3
    return c
