"""``fcnseg train``."""

from __future__ import annotations

import argparse
from pathlib import Path

from fcnseg.data.transforms import AUGMENTS
from fcnseg.errors import FcnsegError
from fcnseg.freeze import FREEZE_MODES
from fcnseg.losses import LOSSES
from fcnseg.models import list_models
from fcnseg.training import DEFAULTS, OPTIMIZERS, read_config_file, resolve_config, train

HELP = """\
Train an FCN by transfer learning. Options come from the defaults, then --config FILE.yaml, then
the flags given here (flags win). The run folder receives config.yaml, metrics.csv,
checkpoint_last.pt (every epoch), checkpoint_best.pt (best validation mean IU), img/ (a picture
per epoch of fixed validation images) and curves.png. Validation uses the dataset's val split,
or its test split where it has none (dataset1).

Transfer-learning modes (--freeze): features = VGG16's convolutional trunk frozen, only fc6/fc7
and the upsampling part learn (the classic recipe); backbone = fc6/fc7 frozen too (the paper's
FCN-32s-fixed); none = fine-tune everything. --unfreeze-at N fine-tunes everything from epoch N.
With a frozen part and no or flip-only augmentation, the frozen outputs are computed once and
cached (--feature-cache auto), which makes epochs many times faster.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train an FCN (frozen backbone or fine-tuning), writing a run folder",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d = DEFAULTS
    p.add_argument("--data", help="dataset folder (dataset1 layout or train/val/test folders)")
    p.add_argument("--out", help="run folder to create")
    p.add_argument(
        "--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint"
    )
    p.add_argument("--config", metavar="FILE", help="YAML file of options (flags override it)")
    p.add_argument("--model", choices=list_models(), help=f"architecture (default {d['model']})")
    p.add_argument(
        "--weights-backbone",
        help="imagenet | none | PATH to a torchvision state dict (default imagenet)",
    )
    p.add_argument(
        "--freeze", choices=FREEZE_MODES, help=f"what stays frozen (default {d['freeze']})"
    )
    p.add_argument(
        "--unfreeze-at", type=int, metavar="EPOCH", help="fine-tune everything from this epoch on"
    )
    p.add_argument(
        "--init-from",
        metavar="CKPT",
        help="initialise matching layers from a checkpoint (FCN-32s -> 16s -> 8s)",
    )
    p.add_argument("--epochs", type=int, help=f"(default {d['epochs']})")
    p.add_argument("--batch-size", type=int, help=f"per device (default {d['batch_size']})")
    p.add_argument("--optimizer", choices=OPTIMIZERS, help=f"(default {d['optimizer']})")
    p.add_argument("--lr", type=float, help=f"learning rate (default {d['lr']})")
    p.add_argument("--momentum", type=float, help=f"SGD momentum (default {d['momentum']})")
    p.add_argument("--weight-decay", type=float, help=f"(default {d['weight_decay']})")
    p.add_argument(
        "--backbone-lr-mult",
        type=float,
        help="lr multiplier of unfrozen pretrained layers (default 1)",
    )
    p.add_argument(
        "--lr-schedule", choices=("constant", "poly"), help=f"(default {d['lr_schedule']})"
    )
    p.add_argument(
        "--loss",
        choices=LOSSES,
        help=f"(default {d['loss']}); seed = the classic one-vs-all log loss",
    )
    p.add_argument(
        "--class-weights", help="none | median-freq | w1,w2,... one per class (default none)"
    )
    p.add_argument(
        "--augment",
        choices=AUGMENTS,
        help=f"none | flip | full = scale+crop+flip+jitter (default {d['augment']})",
    )
    p.add_argument(
        "--crop-size", type=int, help=f"crop for --augment full (default {d['crop_size']})"
    )
    p.add_argument(
        "--scale-range",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="random scale range of --augment full (default 0.5 2.0)",
    )
    p.add_argument(
        "--norm-eval",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the pretrained layers' BatchNorm statistics fixed while fine-tuning (default off)",
    )
    p.add_argument(
        "--feature-cache",
        choices=("auto", "off"),
        help="cache frozen outputs when possible (default auto)",
    )
    p.add_argument(
        "--skip-bad",
        action="store_true",
        default=None,
        help="skip bad image/mask pairs (counted) instead of stopping",
    )
    p.add_argument("--seed", type=int, help=f"(default {d['seed']})")
    p.add_argument("--workers", type=int, help="data-loader processes (default min(4, CPUs))")
    p.add_argument("--accelerator", help="cpu | gpu | auto (default auto)")
    p.add_argument("--devices", help="devices per node, e.g. 1, 4 or auto (default 1)")
    p.add_argument("--num-nodes", type=int, help="machines for DDP (default 1)")
    p.add_argument("--strategy", help="auto | ddp | ddp_spawn ... (Lightning Fabric; default auto)")
    p.add_argument("--precision", choices=("32", "bf16-mixed", "16-mixed"), help="(default 32)")
    p.add_argument("--num-vis", type=int, help="validation images drawn each epoch (default 4)")
    p.add_argument(
        "--fc-channels",
        type=int,
        help="fc6/fc7 width (4096, needed for VGG16's own fc weights; smaller only from scratch)",
    )
    p.add_argument(
        "--input-scale",
        type=float,
        metavar="S",
        help="the model runs on images resized by S and returns labels at the input size; "
        "saved with the model (default: the model's own, 1)",
    )
    p.add_argument(
        "--ema",
        type=float,
        metavar="DECAY",
        help="validate and save an exponential moving average of the weights, e.g. 0.999 "
        "(warm-up min(DECAY, (1+n)/(10+n)) over n steps; default off)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    flags = {k: v for k, v in vars(args).items() if k in DEFAULTS}
    if flags.get("devices") is not None and str(flags["devices"]).isdigit():
        flags["devices"] = int(flags["devices"])
    config_file = args.config
    if args.resume:
        run_dir = Path(args.resume)
        saved = run_dir / "config.yaml"
        if not saved.is_file():
            raise FcnsegError(f"{run_dir}: no config.yaml, not a run folder to resume")
        base = read_config_file(saved)
        if config_file:
            base.update(read_config_file(config_file))
        flags = {**base, **{k: v for k, v in flags.items() if v is not None}, "out": str(run_dir)}
        config_file = None
    cfg = resolve_config(flags, config_file)
    train(cfg, resume=bool(args.resume))
    return 0
