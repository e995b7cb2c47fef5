"""Advance widths of Verdana at 11px, the font and size shields.io badges are drawn in.

A badge's boxes are sized on the server, before any browser has the font, so the width of
each character has to be known here. Too narrow and the text spills over the box edge; too
wide and the badge looks unlike every other badge in the README.

The numbers are the widths that shields.io's renderer (badge-maker, through the
`anafanafo` package) uses: Verdana measured in Chrome at 110px, divided by ten
(metabolize/anafanafo: `test-fixtures.js`, which covers ASCII and Latin-1). A character
outside the table counts as wide as "m", which is anafanafo's guess too: CJK, emoji and
the rest are rarely narrower, and a box a little too wide beats text cut off.

All rights to Verdana itself belong to its copyright holders; these are measurements.
"""

from __future__ import annotations

from typing import Final

# (first code point, last code point, advance width in px at 11px), ranges in order.
_RANGES: Final[tuple[tuple[int, int, float], ...]] = (
    (32, 32, 3.867),  # space
    (33, 33, 4.329),  # !
    (34, 34, 5.049),  # "
    (35, 35, 9.002),  # #
    (36, 36, 6.993),  # $
    (37, 37, 11.838),  # %
    (38, 38, 7.992),  # &
    (39, 39, 2.954),  # '
    (40, 41, 4.995),  # ( )
    (42, 42, 6.993),  # *
    (43, 43, 9.002),  # +
    (44, 44, 4.001),  # ,
    (45, 45, 4.995),  # -
    (46, 46, 4.001),  # .
    (47, 47, 4.995),  # /
    (48, 57, 6.993),  # 0-9
    (58, 59, 4.995),  # : ;
    (60, 62, 9.002),  # < = >
    (63, 63, 6.000),  # ?
    (64, 64, 11.000),  # @
    (65, 65, 7.520),  # A
    (66, 66, 7.541),  # B
    (67, 67, 7.681),  # C
    (68, 68, 8.476),  # D
    (69, 69, 6.956),  # E
    (70, 70, 6.322),  # F
    (71, 71, 8.529),  # G
    (72, 72, 8.266),  # H
    (73, 73, 4.630),  # I
    (74, 74, 5.000),  # J
    (75, 75, 7.622),  # K
    (76, 76, 6.123),  # L
    (77, 77, 9.271),  # M
    (78, 78, 8.229),  # N
    (79, 79, 8.658),  # O
    (80, 80, 6.633),  # P
    (81, 81, 8.658),  # Q
    (82, 82, 7.648),  # R
    (83, 83, 7.520),  # S
    (84, 84, 6.778),  # T
    (85, 85, 8.051),  # U
    (86, 86, 7.520),  # V
    (87, 87, 10.876),  # W
    (88, 88, 7.536),  # X
    (89, 89, 6.768),  # Y
    (90, 90, 7.536),  # Z
    (91, 93, 4.995),  # [ \ ]
    (94, 94, 9.002),  # ^
    (95, 96, 6.993),  # _ `
    (97, 97, 6.606),  # a
    (98, 98, 6.854),  # b
    (99, 99, 5.731),  # c
    (100, 100, 6.854),  # d
    (101, 101, 6.553),  # e
    (102, 102, 3.867),  # f
    (103, 103, 6.854),  # g
    (104, 104, 6.961),  # h
    (105, 105, 3.019),  # i
    (106, 106, 3.787),  # j
    (107, 107, 6.510),  # k
    (108, 108, 3.019),  # l
    (109, 109, 10.699),  # m
    (110, 110, 6.961),  # n
    (111, 111, 6.676),  # o
    (112, 113, 6.854),  # p q
    (114, 114, 4.694),  # r
    (115, 115, 5.731),  # s
    (116, 116, 4.334),  # t
    (117, 117, 6.961),  # u
    (118, 118, 6.510),  # v
    (119, 119, 9.002),  # w
    (120, 121, 6.510),  # x y
    (122, 122, 5.779),  # z
    (123, 123, 6.982),  # {
    (124, 124, 4.995),  # |
    (125, 125, 6.982),  # }
    (126, 126, 9.002),  # ~
    (160, 160, 3.867),  # no-break space
    (161, 161, 4.329),  # ¡
    (162, 165, 6.993),  # ¢ £ ¤ ¥
    (166, 166, 4.995),  # ¦
    (167, 168, 6.993),  # § ¨
    (169, 169, 11.000),  # ©
    (170, 170, 6.000),  # ª
    (171, 171, 7.090),  # «
    (172, 172, 9.002),  # ¬
    (173, 173, 0.000),  # soft hyphen
    (174, 174, 11.000),  # ®
    (175, 175, 6.993),  # ¯
    (176, 176, 5.962),  # °
    (177, 177, 9.002),  # ±
    (178, 179, 5.962),  # ² ³
    (180, 180, 6.993),  # ´
    (181, 181, 7.058),  # µ
    (182, 182, 6.993),  # ¶
    (183, 183, 4.001),  # ·
    (184, 184, 6.993),  # ¸
    (185, 185, 5.962),  # ¹
    (186, 186, 6.000),  # º
    (187, 187, 7.090),  # »
    (188, 190, 11.000),  # ¼ ½ ¾
    (191, 191, 6.000),  # ¿
    (192, 197, 7.520),  # À-Å
    (198, 198, 10.828),  # Æ
    (199, 199, 7.681),  # Ç
    (200, 203, 6.956),  # È-Ë
    (204, 207, 4.630),  # Ì-Ï
    (208, 208, 8.529),  # Ð
    (209, 209, 8.229),  # Ñ
    (210, 214, 8.658),  # Ò-Ö
    (215, 215, 9.002),  # ×
    (216, 216, 8.658),  # Ø
    (217, 220, 8.051),  # Ù-Ü
    (221, 221, 6.768),  # Ý
    (222, 222, 6.660),  # Þ
    (223, 223, 6.821),  # ß
    (224, 229, 6.606),  # à-å
    (230, 230, 10.506),  # æ
    (231, 231, 5.731),  # ç
    (232, 235, 6.553),  # è-ë
    (236, 239, 3.019),  # ì-ï
    (240, 240, 6.730),  # ð
    (241, 241, 6.961),  # ñ
    (242, 246, 6.676),  # ò-ö
    (247, 247, 9.002),  # ÷
    (248, 248, 6.676),  # ø
    (249, 252, 6.961),  # ù-ü
    (253, 253, 6.510),  # ý
    (254, 254, 6.854),  # þ
    (255, 255, 6.510),  # ÿ, as y (the measured table stops at þ)
)

ADVANCE_PX: Final[dict[str, float]] = {
    chr(code): width for first, last, width in _RANGES for code in range(first, last + 1)
}
"""Advance width in px of each character the table covers, Verdana 11px."""

FALLBACK_PX: Final[float] = ADVANCE_PX["m"]
"""Width assumed for a character outside the table: that of "m", as shields.io does."""


def text_width_px(text: str, size_px: float = 11.0) -> float:
    """Width of `text` set in Verdana at `size_px`, without kerning (as shields.io measures).

    Control characters count zero, as they draw nothing; callers strip them anyway.
    """
    width = sum(ADVANCE_PX.get(char, 0.0 if _is_control(char) else FALLBACK_PX) for char in text)
    return width * size_px / 11.0


def fit_text(text: str, max_px: float, size_px: float = 11.0) -> str:
    """`text`, or as much of it as fits in `max_px` followed by "…"."""
    if text_width_px(text, size_px) <= max_px:
        return text
    while text and text_width_px(text + "…", size_px) > max_px:
        text = text[:-1]
    return text + "…"


def _is_control(char: str) -> bool:
    code = ord(char)
    return code < 32 or 127 <= code < 160
