"""Every config key that lib/ reads, with its default and what it means.

Experiment configs start from `get_config()` here and override values; `lib.config.validate`
rejects any key that is not declared below (with the closest valid keys in the message), any
value whose type differs from the default's, and any value that breaks the key's rule in `RULES`
(ranges, finiteness, choices). Lengths and cadences are in optimizer steps; use
`configs.common.steps_per_epoch` to convert.
"""

import ml_collections

from lib.config_rules import (
    FRACTION,
    SEED,
    STEPS,
    at_least,
    each,
    equal_to,
    greater_than,
    in_range,
    module_spec,
)


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0                       # model init, trainable-subset choice, data order, dropout
    c.task = "lib.task:Classification"  # "module:Name" of the Task that defines loss and metrics
    c.label_smoothing = 0.0          # Classification: train targets (1 − ε)·one-hot + ε/K (Inception, timm / DeiT); 0 = plain cross-entropy
    c.total_steps = 1000             # optimizer steps of the whole run
    c.log_every = 50                 # steps between metric fetches / console lines (0: end only)
    c.eval_every = 0                 # steps between evaluations (0: only at the end)
    c.checkpoint_every = 500         # steps between checkpoints (0: only at the end)
    c.keep_checkpoints = 2           # checkpoints kept on disk (the newest N)
    c.async_checkpointing = True     # write checkpoints in the background
    c.progress = True                # console progress lines (step, loss, steps/s, ETA)
    c.compile_cache = "auto"         # persistent compilation cache: auto (JAX_COMPILATION_CACHE_DIR if set, else .jax_cache beside the workdir) | off | a directory (lib/compile_cache.py)
    c.keep_steps = (0,)              # steps whose state is also checkpointed and never deleted (e.g. IMP rewind points; 0s ignored)
    c.procedure = ""                 # "module:function" of a multi-stage procedure (lib.procedure:imp) ('' = one training run)
    c.sections = ("",)               # modules declaring a paper's own config sections (experiments.<slug>.config; their get_config sets it)

    c.model = ml_collections.ConfigDict()
    c.model.name = "cifar_resnet"    # cifar_resnet | imagenet_resnet | cifar_vgg | convnet | strided_convnet | mlp | vit | slim_cifar_resnet | slim_imagenet_resnet | slim_mobilenet_v2 | slim_mobilenet_v3 (lib.models.slimmable)
    c.model.depth = 20               # 6n+2 for cifar_resnet; 18/34/50/101/152/200; 11/13/16/19 for vgg; vit: encoder blocks
    c.model.width = 16               # first-stage width (cifar_resnet W; imagenet_resnet 64); vit: hidden size
    c.model.bn_init = "uniform"      # uniform: γ~U[0,1), β=0 | fixed: 1,0 | oneone: 1,1 | positivenegative: γ~U[-1,1)
    c.model.kernel_init = "kaiming_normal"  # kaiming_normal (untruncated, fan_in) | kaiming_normal_fan_out | kaiming_uniform |
    #                                        torch_default (U(±1/√fan_in)) | orthogonal | binary | lecun_normal (Flax's default)
    c.model.bias_init = "torch"      # conv and linear biases: torch (U(±1/√fan_in)) | zeros (Flax's default)
    c.model.linear_init = ""         # init of linear layers (the head) if it differs from kernel_init ('' = kernel_init)
    c.model.bn_momentum = 0.9        # running ← m·running + (1-m)·batch (PyTorch momentum 0.1)
    c.model.bn_epsilon = 1e-5
    c.model.bn_group_size = 0        # BatchNorm statistics over groups of this many examples in training (per-device BN, MoCo's shuffled BN); 0 = the whole batch
    c.model.dtype = "float32"        # compute dtype: float32 | bfloat16 (parameters, optimizer state, BN statistics and losses stay float32; bfloat16 needs no loss scaling: lib/precision.py)
    c.model.conv_weight_grad = "auto"  # auto (transposed on CPU, else xla) | xla | transposed: how conv weight gradients are formulated (lib/models/conv.py); same values to float rounding
    c.model.widths = (16, 32, 64, 64)  # convnet: widths of its 3x3 conv-BN-ReLU modules; mlp: hidden layer widths
    c.model.pool_after = (1, 3)      # convnet: modules followed by a 2x2 max-pool
    c.model.strides = (2, 2, 1)      # strided_convnet: one stride per 3x3 conv of model.widths
    c.model.conv_padding = "symmetric"  # strided_convnet: symmetric (1 px each side, PyTorch) | same (XLA/TF SAME)
    c.model.shortcut = "projection"  # cifar_resnet: projection (1x1 conv + BN) | zero_pad (option A, parameter-free)
    c.model.stem = ""                # imagenet_resnet: imagenet (7x7/2 + max-pool) | cifar (3x3/1, no pool) ('' = imagenet); slim_cifar_resnet: 1x1 (the joslim code's quirk) | 3x3 ('' = 1x1)
    c.model.mobilenet_kind = "large"  # slim_mobilenet_v3: large | small (MobileNetV3 Tables 1 and 2)
    c.model.stage_widths = ()        # slim_imagenet_resnet and width_transfer's imagenet_resnet: the four stage widths, e.g. (128, 256, 512, 1024) for width ×2 (() = 64, 128, 256, 512)
    c.model.layout = ()              # slim_imagenet_resnet and width_transfer's imagenet_resnet: blocks per stage, e.g. (4, 4, 4, 4) (() = model.depth's: 18 (2, 2, 2, 2), 34 and 50 (3, 4, 6, 3))
    c.model.width_mult = 1.0         # slim_mobilenet_v2 and width_transfer's mobilenet_v2: width multiplier, every width made divisible by 8 (the last conv's 1280 only grows)
    c.model.depth_mult = 1.0         # slim_mobilenet_v2 and width_transfer's mobilenet_v2: blocks per stage ceil(n · depth_mult)
    c.model.final_pool = "avg"       # cifar_vgg: avg | max over the last feature map
    c.model.mask_pruned_residual = False  # resnets: channels whose last block BN has γ = β = 0 (filter-pruned) stay 0 after the residual add
    c.model.variant = ""             # vit preset Ti | S | B | L: sets width, depth, num_heads, mlp_dim ("" = use those keys)
    c.model.patch_size = 16          # vit: square patch side; the image size must be divisible by it
    c.model.num_heads = 6            # vit: attention heads (must divide width)
    c.model.mlp_dim = 1536           # vit: hidden size of the MLP in each block
    c.model.pool = "cls"             # vit: cls (learned token) | gap (mean over patch tokens)
    c.model.encoder_types = "LLLLLL"  # transformers (lib.text.tasks): one character per encoder layer, 'L' regular (a paper adds its own types through model.layer_types)
    c.model.layer_types = ""         # "module:function" called with the config, returning {char: factory} of extra encoder layer types ('' = only 'L')
    c.model.decoder_layers = 1       # transformer encoder-decoder: decoder depth
    c.model.positions = "learned"    # transformers: learned | sinusoidal position embeddings
    c.model.tie_embeddings = True    # transformer encoder-decoder: output layer = token embedding transposed
    c.model.dropout = 0.0            # transformers: dropout after attention and FFN blocks and on embeddings
    c.model.attention_dropout = 0.0  # transformers: dropout on attention weights
    c.model.activation_dropout = 0.0  # transformers: dropout after the FFN activation
    c.model.activation = "relu"      # transformers: FFN activation relu | gelu
    c.model.gelu = "tanh"            # vit MLP activation: tanh (big_vision's approximation) | exact (erf: timm, PyTorch)

    c.data = ml_collections.ConfigDict()
    c.data.name = "fashion_mnist"    # fashion_mnist | digits | tiny_imagenet | tiny_imagenet_c (user files) | "module:function" source | any TFDS name (cifar10, imagenet2012, ...)
    c.data.data_dir = ""             # TFDS data_dir ('' = TFDS default; gs:// allowed); tiny_imagenet(_c): the unpacked folder
    c.data.train_split = "train"
    c.data.eval_split = "test"       # ImageNet: "validation"
    c.data.train_examples = 0        # stratified subset of the train split (0 = all)
    c.data.eval_examples = 0         # stratified subset of the eval split (0 = all)
    c.data.validation_examples = 0   # held out of the train split (seeded, stratified) as split "validation" (0 = none; datasets with their own validation split leave 0)
    c.data.subset_mode = "stratified"  # train/eval_examples subsets: stratified (reads every label: a full decode pass over a TFDS split) | uniform (a seeded draw that reads nothing)
    c.data.subset_seed = 0           # seed of the subsets and of the digits train/test split
    c.data.test_fraction = 0.3       # digits only: held-out fraction
    c.data.pool = 1                  # average-pool factor applied to images (2: 28×28 → 14×14)
    c.data.augment = "none"          # none | flip | cifar (pad-4 crop + flip) | imagenet (inception crop + flip) | views (multi-crop) | "module:Name" (a lib.data.pipeline.Augment)
    c.data.crop_scale = (0.1, 1.0)   # imagenet augment (and papers' random resized crops): area fraction range (torchvision: (0.08, 1.0))
    c.data.crop_ratio = (0.8, 1.25)  # their aspect ratio w/h range, log-uniform (torchvision: (3/4, 4/3))
    c.data.color_jitter = 0.0        # imagenet augment: torchvision ColorJitter brightness = contrast = saturation strength after the crop (0 = off; 8-bit images)
    c.data.lighting = 0.0            # imagenet augment: AlexNet PCA lighting noise std after the jitter (0 = off; 8-bit RGB images)
    c.data.views = (0,)              # augment=views: crops per group, e.g. (2,) or (2, 6) for 2 global + 6 local (0s ignored)
    c.data.view_sizes = (0,)         # augment=views: side of each group's crops
    c.data.view_min_scale = (0.08,)  # augment=views: smallest area fraction of each group's crops
    c.data.view_max_scale = (1.0,)   # augment=views: largest area fraction
    c.data.labels = "true"           # true | random (each train label redrawn once, seeded) | rotation (image rotated r·90°, label r, 4 classes)
    c.data.blur = 0                  # down- then up-sample every image by this factor (0/1 = off; early_phase blur pretraining)
    c.data.image_size = 0            # imagenet: output size; views: eval center-crop size (0 = native size)
    c.data.normalization = "dataset"  # dataset (train mean/std) | imagenet | inception (0.5, 0.5: timm's ViT weights) | cifar10 | cifar10_kuangliu | cifar100 | none
    c.data.batch_size = 128          # global train batch
    c.data.eval_batch_size = 512     # global eval batch (the last one is padded and masked)
    c.data.max_length = 0            # token datasets: longest sequence a batch holds, EOS included (longer train records are dropped, longer eval records refused)
    c.data.batching = "examples"     # token datasets: examples (data.batch_size records padded to max_length) | tokens (about data.batch_tokens per batch, length buckets)
    c.data.batch_tokens = 4096       # token datasets, batching=tokens: tokens per global batch (padding included)
    c.data.bucket_step = 8           # token datasets, batching=tokens: bucket lengths are multiples of this (one compiled shape per bucket)
    c.data.tokenizer = ""            # text datasets: directory of a sentencepiece model (tokenizer.model/.json); '' with procedure lib.text.procedure:run trains one in the workdir
    c.data.vocab_size = 10_000       # text datasets: subword vocabulary trained on the train text (joint for both languages)
    c.data.source_language = "de"    # translation: the source side's language code (file suffix or TFDS feature)
    c.data.target_language = "en"    # translation: the target side's language code
    c.data.lowercase = False         # text datasets: lowercase before tokenising (IWSLT'14 BLEU on lowercased text)
    c.data.num_workers = 0           # Grain worker processes (0 = in the main process)
    c.data.prefetch = 2              # batches Grain prepares ahead per worker

    c.optim = ml_collections.ConfigDict()
    c.optim.name = "sgd"             # sgd | adam | adamw | lars (SimCLR / BYOL: momentum, coupled decay, trust ratio)
    c.optim.lr = 0.1                 # peak learning rate
    c.optim.momentum = 0.9           # sgd only (0 = plain SGD)
    c.optim.nesterov = False
    c.optim.b1 = 0.9                 # adam/adamw
    c.optim.b2 = 0.999
    c.optim.eps = 1e-8
    c.optim.weight_decay = 1e-4      # sgd/adam: coupled L2 (PyTorch form); adamw: decoupled
    c.optim.trust_coefficient = 1e-3  # lars: η of the trust ratio η·‖w‖ / ‖g + wd·w‖
    c.optim.lars_exclude_1d = True   # lars: biases and BN γ/β get neither weight decay nor the trust ratio
    c.optim.weight_decay_exclude = ""  # regex on parameter paths exempt from weight decay ('' = none)
    c.optim.schedule = "step"        # constant | step | cosine | linear (warmup, then linear decay to 0) | inverse_sqrt (fairseq; needs warmup_steps)
    c.optim.milestones = (0,)        # step schedule: steps where lr is multiplied by decay_factor (0s ignored)
    c.optim.decay_factor = 0.1
    c.optim.warmup_steps = 0         # linear warmup from 0 (factor min(1, t/warmup))
    c.optim.cosine_final_fraction = 0.0  # cosine: final lr as a fraction of lr
    c.optim.grad_clip_norm = 0.0     # global-norm clipping (0 = off)
    c.optim.trainable = "all"        # all | bn_only | bn_and_output | output_only | gamma_only | beta_only |
    #                                  random_k_per_channel | random_count | all_no_affine | none
    c.optim.random_k = 2             # random_k_per_channel: kernel entries trained per output channel
    c.optim.freeze = ""              # regex on parameter paths also frozen (e.g. "^encoder/"; '' = none)

    c.mesh = ml_collections.ConfigDict()
    c.mesh.data = -1                 # devices on the data axis (-1 = all the others)
    c.mesh.fsdp = 1                  # devices on the fsdp axis: parameters and optimizer state sharded over it (1 = pure data parallel)
    c.mesh.fsdp_min_size = 2**14     # tensors with fewer elements stay replicated on the fsdp axis

    c.init = ml_collections.ConfigDict()
    c.init.workdir = ""              # start from a checkpoint of another run (its workdir; '' = fresh init)
    c.init.step = -1                 # that run's checkpoint step (-1 = latest)
    c.init.mode = "continue"         # continue (its step, RNG and data order: IMP rewinding) | params (a new stage at step 0: probes, fine-tuning)
    c.init.prefix_map = ("",)        # params: 'source/=destination/' parameter-path prefixes taken from that run (e.g. 'encoder/=backbone/'; none = same paths)
    c.init.optimizer = "fresh"       # fresh (new optimizer state, as open_lth rewinds) | keep
    c.init.transform = ""            # "module:function" (params, masks, config) -> params applied to the starting parameters
    #                                  (e.g. experiments.early_phase.perturb:transform); '' = none

    c.sparsity = ml_collections.ConfigDict()
    c.sparsity.mask = ""             # .npz of {0,1} masks by parameter path: applied at the start, kept through training
    c.sparsity.include = ""          # regex on kernel paths to prune (conv and linear kernels only; '' = all)
    c.sparsity.exclude = ""          # regex on kernel paths never pruned (e.g. "^head/")
    c.sparsity.fraction = 0.2        # share of the remaining prunable weights removed per pruning level
    c.sparsity.scope = "global"      # global | layerwise magnitude ranking
    c.sparsity.openlth_threshold = False  # open_lth parity: threshold at index n removes n+1 weights

    c.robustness = ml_collections.ConfigDict()  # lib.evaluators.robustness after training (class_selectivity)
    c.robustness.noise_sigmas = (0.2, 0.4)  # Gaussian noise std in [0, 1] pixel units (clipped)
    c.robustness.corruptions = ("",)  # corruption names ('' ignored): lib.evaluators.corruptions on the fly, or the released set's
    c.robustness.severities = (1, 2, 3, 4, 5)  # corruption severities evaluated
    c.robustness.corruption_source = "on_the_fly"  # on_the_fly | released (read corruption_data/<name>_<severity>)
    c.robustness.corruption_table = "cifar10"  # on the fly: severity constants cifar10 (CIFAR-10-C) | imagenet (ImageNet-C noise σ)
    c.robustness.corruption_data = "cifar10_corrupted"  # released: dataset whose variants <name>_<severity> copy the eval split (TFDS cifar10_corrupted | tiny_imagenet_c)
    c.robustness.corruption_split = "test"  # released: its split (cifar10_corrupted: test; tiny_imagenet_c: validation)
    c.robustness.corruption_dir = ""  # released: its data_dir (TFDS data_dir; tiny_imagenet_c: the unpacked folder)
    c.robustness.perturbations = ("",)  # lib.perturb transformations as 'kind:k' (e.g. 'rotate:3', 'contrast_decrease:5'; '' ignored): accuracy and representation change under each
    c.robustness.fgsm_eps = (0.01, 0.03, 0.05)  # FGSM ε (L∞, pixel units)
    c.robustness.pgd_eps = (0.0,)    # PGD ε (L∞, random start, step 2.5ε/steps; 0s ignored)
    c.robustness.pgd_steps = 20
    c.robustness.pca_threshold = 0.95  # variance share of the PCA dimensionality
    c.robustness.gradient_units = 0  # units per layer whose input-gradient norms give the gradient variability (0 = off)
    c.robustness.seed = 0            # noise draws and PGD random starts

    c.imp = ml_collections.ConfigDict()
    c.imp.levels = 1                 # pruning levels after the dense run (lib.procedure:imp)
    c.imp.rewind_step = 0            # k: every level restarts from the dense run's state after k steps

    c.eval = ml_collections.ConfigDict()
    c.eval.top_k = 5                 # also report top-k accuracy (0 = off)
    c.eval.bleu = False              # translation (lib.text.tasks): decode each eval pass and report corpus BLEU (eval/bleu); decoding time is not training time
    c.eval.beam_size = 5             # translation decoding: beam width (1 = greedy)
    c.eval.length_penalty = 1.0      # beam search: score / length**this (fairseq's normalisation; 0 = raw log-probability)
    c.eval.bleu_variant = "detok"    # detok (sacrebleu's 13a on detokenised text, WMT) | tok (whitespace tokens as given: fairseq's IWSLT BLEU, tokenizer-free data)
    c.eval.sets = ("",)              # more eval sets, logged as eval_<label>/…: 'validation' | 'label=split' | 'label=dataset@split' ('' ignored)

    c.ssl = ml_collections.ConfigDict()  # self-supervised tasks (lib/ssl)
    c.ssl.temperature = 0.1          # τ of NT-Xent / InfoNCE on cosine similarities (SimCLR ImageNet 0.1; MoCo v2 0.2)
    c.ssl.projector_widths = (2048, 128)  # MLP projector after the encoder: its layers' output widths, ReLU between
    c.ssl.projector_batchnorm = False  # BatchNorm after each hidden projector / predictor layer (SimCLR, BYOL, SwAV: True; MoCo v2: False)
    c.ssl.color = ""                 # on-device colour recipe per view, after the host's crops: '' (none) | simclr | mocov2 | byol | swav (lib.data.device_augment.RECIPES; needs data.normalization='none')
    c.ssl.input_normalization = "none"  # (x − mean) / std inside the network, after ssl.color: none | imagenet | cifar10 | …  (needs data.normalization='none')
    c.ssl.queue_size = 65_536        # MoCo: keys of past batches kept as negatives; SwAV: past embeddings per assignment view for Sinkhorn (0 = none). A multiple of data.batch_size
    c.ssl.ema_decay = 0.999          # MoCo's key / BYOL's target ← decay·EMA + (1 − decay)·online after each step (BYOL: τ_base, 0.996)
    c.ssl.ema_schedule = "constant"  # BYOL: constant | cosine (τ from ema_decay at step 0 to 1 at total_steps)
    c.ssl.predictor_hidden = (4096,)  # BYOL: hidden widths of the predictor MLP; it ends in the projection's width
    c.ssl.prototypes = 3000          # SwAV: number of prototypes (unit vectors the projections are assigned to)
    c.ssl.sinkhorn_epsilon = 0.05    # SwAV: ε of Sinkhorn-Knopp, codes ∝ exp(scores / ε)
    c.ssl.sinkhorn_iterations = 3    # SwAV: Sinkhorn-Knopp iterations
    c.ssl.assign_views = 2           # SwAV: the first views of data.views' first group get codes (the 224 crops)
    c.ssl.queue_start_step = 0       # SwAV: pushes to the queue begin at this step; it joins Sinkhorn once full (paper: epoch 15)
    c.ssl.freeze_prototypes_steps = 0  # SwAV: prototypes get no gradient before this step (paper: the first epoch)
    return c


# The allowed values of numeric and reference keys. Choices among names are checked where they
# are used (models, data, optimizer, tasks), when the run is built and before anything is written.
RULES = {
    "seed": SEED,
    "task": module_spec(optional=False),
    "label_smoothing": in_range(0, 1, high_open=True),
    "total_steps": at_least(1),
    "log_every": STEPS,
    "eval_every": STEPS,
    "checkpoint_every": STEPS,
    "keep_checkpoints": at_least(1),
    "keep_steps": each(STEPS),
    "procedure": module_spec(optional=True),
    "model.depth": at_least(1),
    "model.width": at_least(1),
    "model.bn_momentum": in_range(0, 1),
    "model.bn_epsilon": greater_than(0),
    "model.bn_group_size": at_least(0),
    "model.widths": each(at_least(1)),
    "model.strides": each(at_least(1)),
    "model.pool_after": each(at_least(0)),
    "model.patch_size": at_least(1),
    "model.num_heads": at_least(1),
    "model.mlp_dim": at_least(1),
    "model.decoder_layers": at_least(1),
    "model.dropout": in_range(0, 1, high_open=True),
    "model.attention_dropout": in_range(0, 1, high_open=True),
    "model.activation_dropout": in_range(0, 1, high_open=True),
    "model.stage_widths": each(at_least(1)),
    "model.layout": each(at_least(1)),
    "model.width_mult": greater_than(0),
    "model.depth_mult": greater_than(0),
    "data.train_examples": at_least(0),
    "data.eval_examples": at_least(0),
    "data.validation_examples": at_least(0),
    "data.crop_scale": each(in_range(0, 1, low_open=True)),
    "data.crop_ratio": each(greater_than(0)),
    "data.color_jitter": at_least(0),
    "data.lighting": at_least(0),
    "data.views": each(at_least(0)),
    "data.view_sizes": each(at_least(0)),
    "data.view_min_scale": each(in_range(0, 1, low_open=True)),
    "data.view_max_scale": each(in_range(0, 1, low_open=True)),
    "data.subset_seed": SEED,
    "data.test_fraction": in_range(0, 1, low_open=True, high_open=True),
    "data.pool": at_least(1),
    "data.blur": at_least(0),
    "data.image_size": at_least(0),
    "data.batch_size": at_least(1),
    "data.eval_batch_size": at_least(1),
    "data.max_length": at_least(0),
    "data.batch_tokens": at_least(1),
    "data.bucket_step": at_least(1),
    "data.vocab_size": at_least(5),
    "data.num_workers": at_least(0),
    "data.prefetch": at_least(1),
    "optim.lr": at_least(0),
    "optim.momentum": FRACTION,
    "optim.b1": FRACTION,
    "optim.b2": FRACTION,
    "optim.eps": at_least(0),
    "optim.weight_decay": at_least(0),
    "optim.trust_coefficient": greater_than(0),
    "optim.milestones": each(STEPS),
    "optim.decay_factor": greater_than(0),
    "optim.warmup_steps": STEPS,
    "optim.cosine_final_fraction": in_range(0, 1),
    "optim.grad_clip_norm": at_least(0),
    "optim.random_k": at_least(1),
    "mesh.data": equal_to(-1) | at_least(1),
    "mesh.fsdp": at_least(1),
    "mesh.fsdp_min_size": at_least(0),
    "init.step": equal_to(-1) | at_least(0),
    "init.transform": module_spec(optional=True),
    "sparsity.fraction": FRACTION,
    "robustness.noise_sigmas": each(at_least(0)),
    "robustness.severities": each(in_range(1, 5)),
    "robustness.fgsm_eps": each(at_least(0)),
    "robustness.pgd_eps": each(at_least(0)),
    "robustness.pgd_steps": at_least(1),
    "robustness.pca_threshold": in_range(0, 1, low_open=True),
    "robustness.gradient_units": at_least(0),
    "robustness.seed": SEED,
    "imp.levels": at_least(0),
    "imp.rewind_step": STEPS,
    "eval.top_k": at_least(0),
    "eval.beam_size": at_least(1),
    "eval.length_penalty": at_least(0),
    "ssl.temperature": greater_than(0),
    "ssl.projector_widths": each(at_least(1)),
    "ssl.queue_size": at_least(0),
    "ssl.ema_decay": in_range(0, 1),
    "ssl.predictor_hidden": each(at_least(1)),
    "ssl.prototypes": at_least(1),
    "ssl.sinkhorn_epsilon": greater_than(0),
    "ssl.sinkhorn_iterations": at_least(1),
    "ssl.assign_views": at_least(1),
    "ssl.queue_start_step": at_least(0),
    "ssl.freeze_prototypes_steps": at_least(0),
}
