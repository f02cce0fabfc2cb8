"""Reviews made from templates, to teach the head how negation, irony and minor complaints turn a verdict.

The corpus has few of these turns and the hand-written hard set only hundreds, so templates cross
aspects of six domains with the turns that flip or keep their sentiment. Whether they help is left
to training.sentiment_v2, which scores heads with and without them by k-fold on the hand-written set.
"""

from __future__ import annotations

import random

from training.sentiment_data import Review

# domain: (subjects, praise adjectives, complaint adjectives)
ASPECTS: dict[str, tuple[list[str], list[str], list[str]]] = {
    "food": (["这家的面", "汤底", "这道菜", "外卖", "牛肉", "这里的甜品"],
             ["好吃", "新鲜", "入味", "香"], ["难吃", "咸", "油腻", "腥"]),
    "travel": (["房间", "这家酒店", "景区", "民宿", "床"],
               ["干净", "安静", "舒服", "宽敞"], ["脏", "吵", "潮", "破旧"]),
    "shopping": (["这件衣服", "质量", "耳机", "这双鞋", "做工"],
                 ["好看", "耐用", "结实", "舒服"], ["差", "廉价", "粗糙", "劣质"]),
    "apps": (["这个软件", "界面", "这款游戏", "新版本"],
             ["好用", "流畅", "稳定", "简洁"], ["卡", "难用", "复杂", "费电"]),
    "services": (["客服", "快递", "维修师傅", "售后", "服务员"],
                 ["热情", "专业", "耐心", "靠谱"], ["敷衍", "慢", "冷漠", "拖拉"]),
    "film": (["剧情", "这部电影", "演技", "结局", "节奏"],
             ["精彩", "感人", "紧凑", "好看"], ["无聊", "拖沓", "尴尬", "老套"]),
}
BAD_FACTS = ["我等了整整一个月", "用了两天就坏了", "打了十个电话都没人接", "收到的是坏的", "钱到现在还没退",
             "排了三个小时的队", "一打开就闪退", "又涨价了", "说好的赠品也没有"]
QUOTED_PRAISE = ["极速", "贴心", "高端", "专业", "豪华", "智能", "新鲜", "省心", "耐用", "高效", "正宗", "五星"]
NOUNS = ["服务", "退款", "物流", "售后", "体验", "配送", "客服"]
MINOR = ["稍微贵了点", "配送慢了一点", "包装简单了点", "等位有点久", "颜色略深了一点", "声音有点大"]

NEGATION = [
    ("{s}一点也不{neg}", "positive"), ("{s}一点都不{pos}", "negative"), ("{s}并不{neg}，还挺{pos}的", "positive"),
    ("{s}不是很{pos}", "negative"), ("{s}没有想象中那么{neg}", "positive"), ("{s}没有想象中那么{pos}", "negative"),
    ("我不能说{s}不{pos}", "positive"), ("{s}谈不上{pos}", "negative"), ("谁说{s}{neg}？明明很{pos}", "positive"),
    ("{s}没有一点{pos}的地方", "negative"), ("{s}从来不{neg}", "positive"), ("{s}不怎么{pos}", "negative"),
]
IRONY = [
    ('这"{q}"{n}，{bad}', "negative"), ("呵呵，{bad}", "negative"), ("真是太{pos}了，{bad}", "negative"),
    ('谢谢你们的"{q}"{n}，{bad}', "negative"), ('好一个"{q}"{n}，{bad}', "negative"),
    ('大家都叫它"{q}"{n}，果然名不虚传，很{pos}', "positive"), ("本以为会踩雷，结果{s}很{pos}", "positive"),
]
MIXED = [
    ("就是{minor}，别的都很{pos}", "positive"), ("{minor}，{s}是真的{pos}", "positive"),
    ("除了{s}还算{pos}，其他都很{neg}", "negative"), ("只有{s}还行，其余都很{neg}", "negative"),
]
CONCESSION = [
    ("虽然{s}有点{neg}，但是整体很{pos}", "positive"), ("{s}是挺{pos}的，可惜太{neg}了", "negative"),
    ("{s}一般，不过{s2}很{pos}", "positive"), ("{s}很{pos}，可是{s2}{neg}得没法接受", "negative"),
]


def template_reviews(count_per_kind: int = 120, seed: int = 0) -> list[Review]:
    """The same reviews for the same seed: kinds negation, irony, mixed and concession."""
    rng = random.Random(seed)
    reviews: list[Review] = []
    for kind, templates in (("negation", NEGATION), ("irony", IRONY), ("mixed", MIXED), ("concession", CONCESSION)):
        seen: set[str] = set()
        for _ in range(count_per_kind * 5):
            if len(seen) >= count_per_kind:
                break
            domain = rng.choice(sorted(ASPECTS))
            subjects, praise, complaints = ASPECTS[domain]
            template, label = rng.choice(templates)
            s, s2 = rng.sample(subjects, 2)
            text = template.format(s=s, s2=s2, pos=rng.choice(praise), neg=rng.choice(complaints),
                                   q=rng.choice(QUOTED_PRAISE), n=rng.choice(NOUNS), bad=rng.choice(BAD_FACTS),
                                   minor=rng.choice(MINOR))
            if text not in seen:
                seen.add(text)
                reviews.append(Review(text=text, label=label, kind=kind, domain=domain))
    return reviews
