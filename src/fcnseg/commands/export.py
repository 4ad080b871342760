"""``fcnseg export``: a checkpoint as an ONNX model with dynamic height and width."""

from __future__ import annotations

import argparse

from fcnseg.checkpoint import model_from_checkpoint
from fcnseg.commands.tta import add_checkpoint_argument
from fcnseg.errors import FcnsegError
from fcnseg.files import check_output_file
from fcnseg.zoo import load_checkpoint

MIN_OPSET = 18  # torch.onnx's dynamo exporter writes opset 18 and newer


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX (dynamic H x W) and check it with onnxruntime",
        description="Export a checkpoint to ONNX. Input 'image' (N, 3, H, W) float in [0, 1], any "
        "H and W; output 'logits' (N, C, H, W). The file's metadata_props hold the class names, "
        "palette, ignore index and this input convention (JSON strings). The command runs the "
        "ONNX model with onnxruntime on odd-sized inputs and prints the largest difference from "
        "PyTorch.",
    )
    add_checkpoint_argument(p)
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument(
        "--opset",
        type=int,
        default=MIN_OPSET,
        help=f"ONNX opset, {MIN_OPSET} (the exporter's lowest) or newer (default {MIN_OPSET})",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fcnseg.inference.export import check_onnx, export_onnx

    check_opset(args.opset)
    checkpoint = [("the checkpoint (--checkpoint)", args.checkpoint)]
    check_output_file(args.out, "ONNX file (--out)", inputs=checkpoint)
    model, info = model_from_checkpoint(load_checkpoint(args.checkpoint), args.checkpoint)
    export_onnx(model, args.out, args.opset, info=info)
    for shape in ((1, 3, 97, 131), (2, 3, 45, 70)):
        diff = check_onnx(model, args.out, shape)
        print(f"onnxruntime vs PyTorch on {'x'.join(map(str, shape))}: max |diff| = {diff:.2e}")
    print(f"wrote {args.out}")
    return 0


def check_opset(opset: int) -> None:
    """FcnsegError unless the installed onnx package knows ``opset`` and the exporter writes it."""
    try:
        import onnx
    except ImportError as exc:
        raise FcnsegError("export needs onnx: pip install 'fcnseg[export]'") from exc
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise FcnsegError(f"--opset must be between {MIN_OPSET} and {newest}, got {opset}")
