"""What an asset may be before it is decoded: the limits, and the error a bad asset fails with. No I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

from spotbot.domain.units import MediaLimits


class AssetError(Exception):
    """The asset itself is bad (corrupt, empty, too large): its task fails, the job goes on."""


@dataclass(frozen=True)
class DecodeLimits:
    max_asset_bytes: int
    max_image_pixels: int
    max_text_bytes: int
    text_encodings: tuple[str, ...] = ("utf-8",)
    max_decode_side: int = 4096  # a larger JPEG is decoded at 1/2, 1/4 or 1/8 scale: memory stays bounded
    media: MediaLimits = field(default_factory=MediaLimits)  # documents and video


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def too_large(size: int, limit: int, setting: str = "max_asset_bytes") -> str:
    return f"asset is {mib(size)}, above {setting} ({mib(limit)}); raise SPOTBOT_{setting.upper()} to allow it"


def check_size(size: int, limits: DecodeLimits) -> None:
    if size == 0:
        raise AssetError("empty file (0 bytes)")
    if size > limits.max_asset_bytes:
        raise AssetError(too_large(size, limits.max_asset_bytes))
