"""Every kind of bad asset gets a clear error; good ones come out as the bot expects."""

import io

import pytest
from PIL import Image

from spotbot.services.decoding import AssetError, DecodeLimits, decode_image, decode_text

LIMITS = DecodeLimits(max_asset_bytes=8 * 2**20, max_image_pixels=50_000_000, max_text_bytes=2**20)


def png(image: Image.Image, **save) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=save.pop("format", "PNG"), **save)
    return buffer.getvalue()


def test_corrupt_and_truncated_images_fail():
    with pytest.raises(AssetError, match="not an image"):
        decode_image(b"this is not a png at all", LIMITS)
    whole = png(Image.new("RGB", (200, 200), "red"), format="JPEG")
    with pytest.raises(AssetError, match="corrupt or truncated"):
        decode_image(whole[: len(whole) // 2], LIMITS)


def test_empty_file_fails():
    with pytest.raises(AssetError, match="empty file"):
        decode_image(b"", LIMITS)
    with pytest.raises(AssetError, match="empty file"):
        decode_text(b"", LIMITS)


def test_huge_image_fails_from_its_header_without_decoding():
    blank = png(Image.new("1", (10_000, 10_000), 1))  # 100 megapixels, a few KB on disk
    with pytest.raises(AssetError, match=r"10000x10000 \(100 megapixels\), above max_image_pixels"):
        decode_image(blank, LIMITS)


def test_asset_over_byte_limit_fails():
    with pytest.raises(AssetError, match="above max_asset_bytes"):
        decode_image(b"x" * 100, DecodeLimits(max_asset_bytes=10, max_image_pixels=10, max_text_bytes=10))


def test_images_come_out_rgb_and_upright():
    rgba = decode_image(png(Image.new("RGBA", (4, 2), (0, 0, 0, 0))), LIMITS)
    assert rgba.mode == "RGB" and rgba.getpixel((0, 0)) == (255, 255, 255)  # transparent becomes white
    grey16 = decode_image(png(Image.new("I;16", (3, 3), 65535)), LIMITS)
    assert grey16.mode == "RGB" and grey16.getpixel((1, 1))[0] >= 254
    rotated = Image.new("RGB", (40, 20), "blue")
    exif = rotated.getexif()
    exif[0x0112] = 6  # camera held sideways: rotate 90 degrees on display
    upright = decode_image(png(rotated, format="JPEG", exif=exif), LIMITS)
    assert upright.size == (20, 40)


def test_text_encodings():
    assert decode_text("  好评\r\n".encode("utf-8-sig"), LIMITS) == "好评"
    assert decode_text("好评".encode("utf-16"), LIMITS) == "好评"
    assert decode_text("好评".encode("utf-16"), LIMITS).encoding == "utf-16"
    gbk = "质量很好".encode("gb18030")
    with_gb = DecodeLimits(**{**LIMITS.__dict__, "text_encodings": ("utf-8", "gb18030")})
    assert decode_text(gbk, with_gb) == "质量很好" and decode_text(gbk, with_gb).encoding == "gb18030"
    # not UTF-8 and no setting: detected, preferring GB 18030 on a near tie, and the encoding is kept
    for text in ("质量很好", "味道不错，推荐", "这家店的菜很好吃，服务也很周到，下次还来。"):
        for encoding in ("gb18030", "gbk"):
            detected = decode_text(text.encode(encoding), LIMITS)
            assert (detected, detected.encoding) == (text, "gb18030")
    japanese = decode_text("おいしいです、また来ます".encode("shift_jis"), LIMITS)
    assert japanese == "おいしいです、また来ます" and japanese.encoding in ("shift_jis", "cp932")
    assert decode_text("plain".encode(), LIMITS).encoding == "utf-8"
    with pytest.raises(AssetError, match="no encoding could be detected"):
        decode_text(bytes(range(0x80, 0x100)) * 3 + b"\xff\xfe\xfd", LIMITS)


def test_text_too_large_blank_or_binary_fails():
    with pytest.raises(AssetError, match=r"text is 3.0 MiB, above max_text_bytes \(1.0 MiB\)"):
        decode_text("好".encode() * (2**20), LIMITS)
    with pytest.raises(AssetError, match="only white space"):
        decode_text(b" \n\t ", LIMITS)
    with pytest.raises(AssetError, match="NUL"):
        decode_text(b"ab\x00cd", LIMITS)


def test_a_large_jpeg_is_decoded_at_reduced_scale():
    big = Image.new("RGB", (8000, 6000), "white")
    data = png(big, format="JPEG", quality=50)
    decoded = decode_image(data, DecodeLimits(**{**LIMITS.__dict__, "max_decode_side": 2000}))
    assert decoded.size == (2000, 1500)  # 1/4 scale from the DCT: the 48-megapixel bitmap never existed
    assert decode_image(data, LIMITS).size == (4000, 3000)  # 1/2 at the default 4096 cap: 8000 px was over it


def test_a_large_image_without_dct_scaling_is_reduced_to_the_cap():
    big = Image.new("RGB", (6000, 1000), "white")
    decoded = decode_image(png(big), DecodeLimits(**{**LIMITS.__dict__, "max_decode_side": 4096}))
    assert decoded.size == (3000, 500)  # a PNG is decoded whole, then reduced: what the bot holds is capped
