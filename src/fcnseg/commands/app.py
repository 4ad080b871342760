"""``fcnseg app``: a web page to segment photos in the browser (Gradio; ``fcnseg[app]``)."""

from __future__ import annotations

import argparse
import sys

from fcnseg.app import PAGE_OPTIONS
from fcnseg.commands.tta import add_inference_arguments, inference_config
from fcnseg.errors import FcnsegError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "app",
        help="a web page to segment photos: overlay, label map, legend, class shares",
        description="Serve a web page (Gradio) where you upload a photo or pick an example and "
        "see its segmentation: the labels over the photo (opacity slider), the colour label "
        "map, a legend with each class's share, the time taken; options for the model and "
        "test-time augmentation. Runs offline, on 127.0.0.1 unless --host says otherwise. "
        "Needs the app extra: pip install 'fcnseg[app]'.",
    )
    p.add_argument(
        "--checkpoint",
        action="append",
        metavar="CKPT_OR_NAME",
        help="a checkpoint written by fcnseg train, or a built-in model's name (see fcnseg "
        "models); repeat to offer several (default: the best built-in model)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--examples", metavar="DIR", help="offer the images in DIR as examples")
    add_inference_arguments(p, exclude=PAGE_OPTIONS)
    p.set_defaults(func=run)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    import signal
    import tempfile
    from pathlib import Path

    from fcnseg import app, zoo

    config = inference_config(args)  # every option is checked before the page is served
    app.require_gradio()
    checkpoints = args.checkpoint
    if not checkpoints:
        best = zoo.best()
        if best is None:
            raise FcnsegError(
                "no built-in model is shipped with this fcnseg; give --checkpoint CKPT "
                "(a checkpoint written by fcnseg train)"
            )
        checkpoints = [best.name]

    config.runtime()  # device, precision and backend can run together here
    for ckpt in checkpoints:  # models load on first use; a bad file must not wait until then
        zoo.load_checkpoint(ckpt)
    app.check_port(args.host, args.port)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"fcnseg app: listening on {args.host}: other machines may reach this page",
            file=sys.stderr,
        )
    # A service manager's SIGTERM stops the server as Ctrl-C does, so the folder is removed.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with tempfile.TemporaryDirectory(prefix="fcnseg-app-") as work:
            examples = app.example_images(args.examples, Path(work))
            app.serve(
                checkpoints,
                host=args.host,
                port=args.port,
                examples=examples,
                config=config,
                work_dir=Path(work),
            )
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
