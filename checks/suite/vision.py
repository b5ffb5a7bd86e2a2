"""vision: torchvision's compiled ops run on the device, torchvision.io decodes PNG and JPEG,
a torchvision model (random weights) runs forward, and cv2/PIL round-trip an image.

Device: cuda when a GPU may be used, else cpu. Inputs are small integers so results are exact
even when convolutions run in TF32.
"""

from __future__ import annotations

import importlib
import io
from typing import Any

from ..result import Outcome, failed, passed
from ..spec import CheckContext, CheckSpec

FIX = "install the vision layer's packages (torchvision paired with torch, opencv, pillow)"
# Box 1 overlaps box 0 with IoU 81/119 = 0.68 > 0.5, so NMS keeps boxes 0 and 2.
NMS_BOXES = [[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [20.0, 20.0, 30.0, 30.0]]
NMS_SCORES = [0.9, 0.8, 0.7]
NMS_KEEP = [0, 2]


def ops_problems(torch: Any, ops: Any, device: Any) -> list[str]:
    problems = []
    boxes = torch.tensor(NMS_BOXES, device=device)
    scores = torch.tensor(NMS_SCORES, device=device)
    keep = ops.nms(boxes, scores, iou_threshold=0.5).cpu().tolist()
    if keep != NMS_KEEP:
        problems.append(f"torchvision.ops.nms kept {keep}, expected {NMS_KEEP}")
    # roi_align of a constant image is that constant everywhere inside the box.
    image = torch.full((1, 2, 8, 8), 2.5, device=device)
    rois = torch.tensor([[0.0, 1.0, 1.0, 5.0, 5.0]], device=device)
    pooled = ops.roi_align(image, rois, output_size=(2, 2), sampling_ratio=2, aligned=True)
    if tuple(pooled.shape) != (1, 2, 2, 2) or not bool((pooled == 2.5).all()):
        problems.append(f"torchvision.ops.roi_align gave {pooled.flatten().tolist()}, not all 2.5")
    # deform_conv2d with zero offsets is a plain convolution.
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(-3, 4, (1, 3, 8, 8), generator=generator).float().to(device)
    weight = torch.randint(-2, 3, (4, 3, 3, 3), generator=generator).float().to(device)
    offset = torch.zeros(1, 2 * 3 * 3, 6, 6, device=device)
    deformed = ops.deform_conv2d(x, offset, weight)
    plain = torch.nn.functional.conv2d(x, weight)
    if not torch.equal(deformed, plain):
        diff = float((deformed - plain).abs().max())
        problems.append(f"deform_conv2d with zero offsets differs from conv2d by {diff}")
    return problems


def synthetic_image(torch: Any, height: int = 48, width: int = 64) -> Any:
    """(3, H, W) uint8: smooth gradients and a square, so JPEG keeps it close."""
    ys = torch.arange(height).view(-1, 1).expand(height, width)
    xs = torch.arange(width).view(1, -1).expand(height, width)
    image = torch.stack([xs * 255 // (width - 1), ys * 255 // (height - 1), (xs + ys) % 256])
    image[:, 16:32, 20:40] = 200
    return image.to(torch.uint8).contiguous()


# JPEG is lossy; at quality 95 a smooth image comes back within a few levels on average.
JPEG_MEAN_ERROR_MAX = 4.0


def torchvision_io_problems(torch: Any) -> list[str]:
    """PNG encoded and decoded by torchvision.io must be exact; a JPEG written by PIL (another
    encoder) must decode through torchvision.io close to the original."""
    try:
        tv_io = importlib.import_module("torchvision.io")
    except Exception as exc:
        return [f"torchvision.io is not importable ({type(exc).__name__}: {exc}); {FIX}"]
    image = synthetic_image(torch)
    problems = []
    png = tv_io.encode_png(image)
    decoded = tv_io.decode_image(png)
    if not torch.equal(decoded, image):
        problems.append("torchvision.io PNG encode/decode did not round-trip the pixels")
    try:
        pil_image = importlib.import_module("PIL.Image")
    except ImportError:
        jpeg = tv_io.encode_jpeg(image, quality=95)  # no PIL: torchvision's own encoder
    else:
        buffer = io.BytesIO()
        pil_image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, "JPEG", quality=95)
        jpeg = torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)
    decoded = tv_io.decode_jpeg(jpeg)
    if tuple(decoded.shape) != tuple(image.shape):
        problems.append(f"torchvision.io.decode_jpeg gave shape {tuple(decoded.shape)}")
    else:
        error = float((decoded.float() - image.float()).abs().mean())
        if error > JPEG_MEAN_ERROR_MAX:
            problems.append(
                f"torchvision.io.decode_jpeg is off by {error:.1f} levels on average "
                f"(more than {JPEG_MEAN_ERROR_MAX:g})"
            )
    return problems


def model_problems(torch: Any, device: Any) -> list[str]:
    """resnet18 with random weights (nothing downloaded) runs a forward pass."""
    try:
        models = importlib.import_module("torchvision.models")
    except Exception as exc:
        return [f"torchvision.models is not importable ({type(exc).__name__}: {exc}); {FIX}"]
    torch.manual_seed(0)
    model = models.resnet18(weights=None).eval().to(device)
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 64, 64, device=device))
    if tuple(logits.shape) != (2, 1000):
        return [f"resnet18 forward gave shape {tuple(logits.shape)}, expected (2, 1000)"]
    if not bool(torch.isfinite(logits).all()):
        return ["resnet18 forward gave NaN/inf"]
    return []


def codec_problems() -> list[str]:
    try:
        np = importlib.import_module("numpy")
        cv2 = importlib.import_module("cv2")
        pil_image = importlib.import_module("PIL.Image")
    except Exception as exc:
        return [f"{type(exc).__name__}: {exc}; {FIX}"]
    problems = []
    image = np.random.default_rng(0).integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".png", image)
    decoded = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED) if ok else None
    if decoded is None or not np.array_equal(decoded, image):
        problems.append("cv2 PNG encode/decode did not round-trip the pixels")
    buffer = io.BytesIO()
    pil_image.fromarray(image).save(buffer, format="PNG")
    buffer.seek(0)
    if not np.array_equal(np.asarray(pil_image.open(buffer)), image):
        problems.append("PIL PNG save/load did not round-trip the pixels")
    if ok:
        # cv2 writes BGR: PIL must read cv2's file with the channels reversed.
        crossed = np.asarray(pil_image.open(io.BytesIO(encoded.tobytes())))[..., ::-1]
        if not np.array_equal(crossed, image):
            problems.append("PIL read cv2's PNG with different pixels")
    return problems


def run(ctx: CheckContext) -> Outcome:
    import torch

    try:
        ops = importlib.import_module("torchvision.ops")
    except Exception as exc:
        return failed(f"torchvision is not importable ({type(exc).__name__}: {exc}); {FIX}")
    device = torch.device(ctx.device)
    problems = (
        ops_problems(torch, ops, device)
        + torchvision_io_problems(torch)
        + model_problems(torch, device)
        + codec_problems()
    )
    if problems:
        return failed("; ".join(problems))
    return passed(
        f"torchvision nms/roi_align/deform_conv2d exact on {device}; torchvision.io PNG exact "
        f"and JPEG close; resnet18 forward on {device}; cv2 and PIL PNG round trips"
    )


CHECK = CheckSpec(
    id="vision",
    layers=("vision",),
    needs_gpu=False,
    timeout_s=120,
    run=run,
    summary="torchvision ops, torchvision.io PNG/JPEG decode, resnet18 forward, cv2/PIL",
)
