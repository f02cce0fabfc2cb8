"""Videos as units, with PyAV (FFmpeg's libraries in the wheel, the `media` extra): sampled frames.

A frame is sampled every video_sample_seconds, and at once at a scene cut (a check every half
second at most finds cuts). A sampled frame nearly identical to the last one kept is skipped:
frames are compared by a perceptual hash, a 160x90 grey thumbnail, counting the cells that changed.
So a talk of 12 slides is tagged about 12 times, not once per sample. Frames are decoded one at a
time and only kept frames become images, so memory stays flat for a long video.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spotbot.domain.catalogue import VIDEO_TYPES  # noqa: F401 - the file types this module reads
from spotbot.domain.units import MediaLimits, Unit
from spotbot.domain.limits import AssetError
from spotbot.services.documents import sniff

if TYPE_CHECKING:  # numpy loads with the first video: a shard of texts never pays for it
    import numpy as np

HASH_SIZE = (160, 90)  # thumbnail width, height: fine enough that one changed digit on a slide shows
CELL_CHANGED = 24  # grey levels: a cell that moved less is compression noise
SCENE_CUT_FRACTION = 0.3  # cells changed since the previous check: a cut, sampled at once
MAX_CHECK_SECONDS = 0.5


def frame_hash(frame: Any) -> np.ndarray:
    """A frame's perceptual hash: its grey 160x90 thumbnail (FFmpeg scales it, no full-size copy)."""
    # AREA averages every pixel: bilinear at this ratio samples a few and misses thin text strokes
    import numpy as np

    thumbnail = frame.reformat(width=HASH_SIZE[0], height=HASH_SIZE[1], format="gray", interpolation="AREA")
    return thumbnail.to_ndarray().astype(np.int16)


def changed_fraction(a: np.ndarray, b: np.ndarray) -> float:
    """The share of thumbnail cells that differ by more than compression noise."""
    import numpy as np

    return float(np.count_nonzero(np.abs(a - b) > CELL_CHANGED)) / a.size


def _open(source: bytes | Path) -> Any:
    import av

    if isinstance(source, Path):
        with open(source, "rb") as file:
            looks = sniff(file.read(16))
    else:
        looks = sniff(source)
    if looks and "video" not in looks:  # FFmpeg would read a JPEG as a one-frame video
        raise AssetError(f"not a video: the file is {looks}")
    try:  # from a file, FFmpeg reads as it decodes: a long video is never in memory whole
        container = av.open(str(source) if isinstance(source, Path) else io.BytesIO(source), mode="r")
    except (av.FFmpegError, ValueError) as error:
        raise AssetError(f"corrupt or unreadable video: {error}") from None
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        container.close()
        raise AssetError(f"video has no video stream (it holds: {', '.join(kinds)})")
    return container


def _too_long(seconds: float, limits: MediaLimits) -> AssetError:
    return AssetError(
        f"video is {seconds:.0f} s long, above max_video_seconds ({limits.max_video_seconds:.0f} s); "
        "raise SPOTBOT_MAX_VIDEO_SECONDS to allow it"
    )


def frame_units(source: bytes | Path, limits: MediaLimits) -> Iterator[Unit]:
    """The kept frames of a video (its bytes, or a file) as RGB images, each with its time `t` in seconds."""
    import av

    container = _open(source)
    try:
        if container.duration is not None and container.duration / av.time_base > limits.max_video_seconds:
            raise _too_long(container.duration / av.time_base, limits)
        stream = container.streams.video[0]
        check_every = min(MAX_CHECK_SECONDS, limits.video_sample_seconds)
        next_check = next_sample = 0.0
        previous: np.ndarray | None = None  # the last checked frame's hash: cuts
        kept: np.ndarray | None = None  # the last kept frame's hash: duplicates
        count = 0
        for frame in _decode(container, stream):
            t = float(frame.time) if frame.time is not None else 0.0
            if t > limits.max_video_seconds:  # the container may not say how long it is
                raise _too_long(t, limits)
            if t < next_check:
                continue
            next_check = t + check_every
            current = frame_hash(frame)
            cut = previous is not None and changed_fraction(current, previous) >= SCENE_CUT_FRACTION
            previous = current
            if t < next_sample and not cut:
                continue
            next_sample = t + limits.video_sample_seconds
            if kept is not None and changed_fraction(current, kept) <= limits.video_dedup_fraction:
                continue
            kept = current
            count += 1
            if count > limits.max_frames_per_asset:
                raise AssetError(
                    f"video gives more than max_frames_per_asset ({limits.max_frames_per_asset}) sampled frames; "
                    "raise SPOTBOT_MAX_FRAMES_PER_ASSET or SPOTBOT_VIDEO_SAMPLE_SECONDS"
                )
            yield Unit(value=frame.to_image(), t=round(t, 1))
        if count == 0:
            raise AssetError("video has no decodable frames")
    finally:
        container.close()


def _decode(container: Any, stream: Any) -> Iterator[Any]:
    import av

    try:
        yield from container.decode(stream)
    except av.FFmpegError as error:
        raise AssetError(f"corrupt video: {error}") from None
