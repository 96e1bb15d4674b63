"""Face crops of the training split only, to calibrate FaceNet's int8 quantization.

Static quantization fixes each activation's int8 range from a sample of real inputs.
That sample must not include the photos the held-out accuracy is measured on, or the
figure would flatter the quantized model, so this takes the split ``python -m training
train`` makes (photos with a usable face, ``TrainConfig``'s test size and seed) and keeps
only its training side. Every face found in those photos is cut as a new model's embedder
cuts it (FaceNet: warped onto the ArcFace template), so the ranges are those of the crops the
service embeds; the output line names the crop. Each face is also cut as the dlib ResNet cuts
it (``dlib_crops``: its template, 150 px), on which ``make onnx`` checks that network against
the npm package's own (scripts/dlib_resnet.py).

Run in the service venv (it needs the detector and training's split); ``make onnx`` runs it:

    .venv/bin/python scripts/calibration_faces.py --data ../shared/data/hobbits --out /tmp/calib.npz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from app.labelled.folders import DatasetError, scan
from app.pipeline.align import warp_to_template
from app.pipeline.decode import decode_photo
from app.pipeline.features.dlib_resnet import TEMPLATE as DLIB_TEMPLATE
from training.split import plan_evaluation
from training.train import Stages, TrainConfig, usable_photos


def training_crops(data: Path) -> tuple[list[str], np.ndarray, np.ndarray, int, str]:
    """Keys (``person/photo#face``), the embedder's and dlib's crops of every face of the training
    photos; the test count; the embedder and its crop parameters, in words."""
    config = TrainConfig(data=data, artifacts=Path("unused"))
    stages = Stages.create(config)
    dataset, faces = usable_photos(scan(data), stages)
    plan = plan_evaluation(dataset.photos, config.test_size, config.seed)
    held_out = {p.path for p in plan.test}
    keys, crops, dlib_crops = [], [], []
    for photo in sorted(plan.train, key=lambda p: p.path):
        if photo.path in held_out:  # cannot happen with a split; stated because the rule matters
            raise AssertionError(f"{photo.path} is on both sides of the split")
        rgb = decode_photo(photo.path.read_bytes(), min_side=stages.detector.max_side).rgb
        for i, face in enumerate(faces[photo].faces):
            keys.append(f"{photo.path.relative_to(data)}#{i}")
            crops.append(stages.extractor.crop(rgb, face))
            dlib_crops.append(warp_to_template(rgb, face, DLIB_TEMPLATE))
    cut = f"{stages.extractor.name} {stages.extractor.params}"
    return keys, np.stack(crops), np.stack(dlib_crops), len(plan.test), cut


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="photo folder, <root>/<person>/*.jpg")
    parser.add_argument("--out", type=Path, required=True, help="where to write the crops (.npz)")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        parser.error(f"no photo folder at {args.data}")
    try:
        keys, crops, dlib_crops, tested, cut = training_crops(args.data)
    except DatasetError as exc:  # TrainingInputError included
        parser.error(str(exc))
    np.savez_compressed(args.out, keys=np.array(keys), crops=crops, dlib_crops=dlib_crops)
    print(f"{args.out}: {len(keys)} faces of training photos cut by {cut}; {tested} held-out photos left out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
