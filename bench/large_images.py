"""Peak memory of decoding one large photo: Pillow's full decode against spotbot's capped decode.

    PYTHONPATH=. python bench/large_images.py [--side 9000]

Each decode runs in a fresh process (peak RSS is per process): a JPEG and a PNG of side x 3/4 side
pixels, decoded fully by Pillow and by spotbot.services.decoding.decode_image (JPEG: DCT draft at
max_decode_side; other formats: reduce() after the load).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import resource, sys, time
from pathlib import Path
if sys.argv[1] == "spotbot":  # imported first, so "decode" counts the decode alone
    from spotbot.services.decoding import decode_image
    from spotbot.services.shard import limits_from
    from spotbot.settings import Settings
data = Path(sys.argv[2]).read_bytes()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
if sys.argv[1] == "pillow":
    import io
    from PIL import Image
    Image.MAX_IMAGE_PIXELS = None
    image = Image.open(io.BytesIO(data)).convert("RGB")
else:
    image = decode_image(data, limits_from(Settings()))
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{image.width}x{image.height} {seconds:.2f} {peak / 1024:.0f} {(peak - before) / 1024:.0f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--side", type=int, default=8000)  # 48 MP: under max_image_pixels (50 MP)
    args = parser.parse_args()
    from PIL import Image

    width, height = args.side, args.side * 3 // 4
    with tempfile.TemporaryDirectory() as tmp:
        image = Image.radial_gradient("L").resize((width, height)).convert("RGB")
        files = {"JPEG": Path(tmp) / "big.jpg", "PNG": Path(tmp) / "big.png"}
        image.save(files["JPEG"], quality=90)
        image.save(files["PNG"], compress_level=1)
        del image
        print(f"a {width}x{height} photo ({width * height / 1e6:.0f} MP); peak RSS of a fresh process, MiB")
        print(f"{'format':6} {'decoder':8} {'result':>11} {'seconds':>8} {'peak':>6} {'decode':>7}")
        for kind, path in files.items():
            for decoder in ("pillow", "spotbot"):
                done = subprocess.run([sys.executable, "-c", CHILD, decoder, str(path)], capture_output=True, text=True)
                if done.returncode:
                    raise SystemExit(done.stderr)
                out = done.stdout.split()
                print(f"{kind:6} {decoder:8} {out[0]:>11} {out[1]:>8} {out[2]:>6} {out[3]:>7}")


if __name__ == "__main__":
    main()
