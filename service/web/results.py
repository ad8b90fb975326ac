"""The public results page: the ranked table, a bar chart drawn on the server (inline
SVG, no JavaScript), the method in words, the counts and what a voter needs to check
that their ballot was counted.

Everything shown comes from ``results_document``, the same document as
``GET /api/v1/campaigns/{slug}/results``: the view only puts it into words and shapes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import make_response, render_template, request, session, url_for
from flask_babel import gettext as _

from engine.vocabulary import (
    BUDGET_RULES,
    DEFAULT_AWARD,
    PUBLISHED_DECIMALS,
    TRIM_MIN_REVIEWS,
)

from .. import http_cache
from ..domain.campaigns import campaign_status, get_campaign, visible_campaign
from ..domain.publications import (
    get_publication,
    latest_head,
    publication_document,
    results_document,
)
from ..errors import ApiError
from ..extensions import limiter
from ..models import Campaign
from . import bp
from .pages import status_label
from .render import is_english

# Bump when the page's template or words change: cached pages carry it in their key.
PAGE_VERSION = "r18-1"

# Chart geometry, in SVG user units. The drawing is as wide as a phone (1:1 with CSS
# pixels on a 390 px screen, scaled up to at most 1.5x on a desktop): every entry gets a
# line with its rank and title, and a bar under it with the combined score after it.
CHART_WIDTH = 360
VALUE_WIDTH = 50  # the combined score after the longest bar
TITLE_SIZE = 13  # font size of a title line (site.css .chart .bar-label)
ROW_PITCH = 36  # title line 16, bar 12, gap 8
TITLE_HEIGHT = 16
BAR_HEIGHT = 12
CHART_TOP = 30  # the legend
CHART_BOTTOM = 24  # the axis labels
TICKS = 4


# --- numbers and words ------------------------------------------------------------------


PAGE_DECIMALS = 2  # the JSON and CSV keep PUBLISHED_DECIMALS


def _num(value: Any) -> str:
    """A published score for the eye: ``PAGE_DECIMALS`` decimals (the JSON and CSV have
    the full ``PUBLISHED_DECIMALS``); whole counts stay whole."""
    if value is None:
        return "—"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"{float(value):.{PAGE_DECIMALS}f}"


def _short(value: Any) -> str:
    """A number without trailing zeros (percentages, axis labels, clip bounds)."""
    number = float(value)
    if number.is_integer():
        return str(int(number))
    return f"{number:.{PUBLISHED_DECIMALS}f}".rstrip("0").rstrip(".")


def _money(value: Any) -> str:
    if value is None:
        return "—"
    number = float(value)
    if number.is_integer():
        return f"{int(number):,}"
    return f"{number:,.2f}"


def _percent(weight: float) -> str:
    return _short(round(float(weight) * 100, 4)) + "%"


def _local(campaign: Campaign, value: str | None) -> str | None:
    if not value:
        return None
    at = datetime.fromisoformat(value).astimezone(ZoneInfo(campaign.timezone))
    return at.strftime("%Y-%m-%d %H:%M")


def _flag_words(flag: str) -> str:
    words = {
        "insufficient_reviews": _("评审数不足"),
        "area_cap_reached": _("所在居民区名额已满"),
        "category_max_reached": _("所在类别名额已满"),
        "below_min_votes": _("票数未达门槛"),
        "seat_reserved_for_quota": _("名额已留给其他类别的保底名额"),
        "winners_cap_reached": _("入选数量已满"),
    }
    return words.get(flag, flag)


def infeasible_reason_words(reason: str | None) -> str:
    """Why an entry cannot reach its minimum number of reviews, in words."""
    words = {
        "review_closed": _("评审已结束"),
        "recusal": _("有专家与它同属一个居民区，须回避"),
        "assignment": _("有专家没有分配到它"),
        "withdrawal": _("有专家已被撤销"),
        "too_few_experts": _("专家人数不够"),
    }
    return words.get(reason or "", reason or "")


def _tie_words(rule: str | None) -> str | None:
    if rule is None:
        return None
    words = {
        "votes": _("票数较多"),
        "expert": _("专家得分较高"),
        "reviews": _("评审数较多"),
        "cost": _("所需经费较少"),
        "lot": _("抽签"),
    }
    return words.get(rule, rule)


def _award_words(award: str | None) -> str:
    if not award or award == DEFAULT_AWARD:
        return _("入选")
    return award


# --- the method in words ---------------------------------------------------------------


def _weights_text(method: dict) -> str:
    wp, we = float(method["public_weight"]), float(method["expert_weight"])
    if we == 0:
        return _("只按公众投票排名：综合得分 = 投票得分 × %(p)s。", p=_percent(wp))
    if wp == 0:
        return _("只按专家评审排名：综合得分 = 专家得分 × %(e)s。", e=_percent(we))
    return _(
        "综合得分 = 公众投票 %(p)s + 专家评审 %(e)s（投票得分 × %(p)s + 专家得分 × %(e)s）。",
        p=_percent(wp),
        e=_percent(we),
    )


def _vote_score_text(kind: str) -> str:
    words = {
        "max": _("投票得分 = 100 × 该项目票数 ÷ 最高票数（得票最多的项目为 100 分）。"),
        "approval_rate": _("投票得分 = 100 × 该项目票数 ÷ 计入的选票数（支持率）。"),
        "share": _("投票得分 = 100 × 该项目票数 ÷ 全部项目票数之和（得票占比）。"),
        "rank_points": _(
            "投票得分按票数名次给分：票数第一为 100 分，最后一名为 0 分，其间均匀分布；"
            "票数相同的项目得分相同。"
        ),
        "log": _(
            "投票得分 = 100 × log(1 + 该项目票数) ÷ log(1 + 最高票数)（对数压缩，减小票数悬殊的影响）。"
        ),
    }
    return words.get(kind, kind)


def _aggregate_text(kind: str) -> str:
    words = {
        "mean": _("项目的专家得分取各份评审分的平均值。"),
        "trimmed_mean": _(
            "项目的专家得分：评审不少于 %(n)s 份时，去掉一个最高分和一个最低分后取平均值；"
            "少于 %(n)s 份时取平均值。",
            n=TRIM_MIN_REVIEWS,
        ),
        "median": _("项目的专家得分取各份评审分的中位数。"),
    }
    return words.get(kind, kind)


def _calibration_text(kind: str) -> str:
    words = {
        "none": _("不对评委的宽严程度做校正。"),
        "zscore": _(
            "校正评委的宽严：每位评委的分数先换算为标准分（z 分数），再换回全体评委的分数尺度。"
        ),
        "additive": _(
            "校正评委的宽严：用最小二乘法拟合“项目水平 + 评委偏差”模型，"
            "从每份评审分中扣除该评委的偏差。"
        ),
    }
    return words.get(kind, kind)


def _calibration_fine_print(method: dict) -> list[str]:
    """The choices a calibration makes that a reader needs to redo it (README "Ranking
    method"); said only for documents that publish them."""
    kind = method["calibration"]
    if kind == "none" or "calibrated_clip" not in method:
        return []
    low, high = method["calibrated_clip"]
    lines = []
    if kind == "zscore":
        lines.append(
            _(
                "标准分 z =（评审分 − 该评委的平均分）÷ 该评委的标准差，校正后 = 全体平均分 + z × "
                "全体标准差。标准差都是总体标准差（除以份数 n，不是 n − 1）；全体平均分和标准差"
                "按所有评审分合在一起计算。只有一份评审或各份分数相同的评委，z 取 0。"
            )
        )
    else:
        lines.append(
            _(
                "校正后 = 评审分 − 该评委的偏差；所有评委的偏差之和为 0。拟合只用有评审的项目："
                "没有任何评审的项目不参加拟合，专家得分为 0，并标为“评审数不足”。"
            )
        )
        lines.append(
            _(
                "项目的专家得分是把校正后的各份评审分按上面的方法汇总得出，不是直接取拟合出的"
                "项目水平；只有取平均值且没有分数被截断时，两者才相等。"
            )
        )
    lines.append(
        _(
            "校正后的评审分限制在 %(lo)s 到 %(hi)s 之间（低于 %(lo)s 记为 %(lo)s，高于 %(hi)s 记为 "
            "%(hi)s），然后再汇总。每位评委的校正参数和每份评审的原始分、校正后分数见“评审明细”。",
            lo=_short(low),
            hi=_short(high),
        )
    )
    return lines


def _selection_text(method: dict) -> list[str]:
    rule = method["rule"]
    lines: list[str] = []
    if rule == "top":
        if method.get("winners") is None:
            lines.append(_("本次只排名，不评选入选项目。"))
        else:
            lines.append(_("按排名从高到低选出 %(n)s 个入选项目。", n=method["winners"]))
            quotas = method.get("categories") or {}
            if quotas:
                parts = []
                for category, q in quotas.items():
                    low, high = int(q.get("min") or 0), q.get("max")
                    if high is None:
                        parts.append(_("%(c)s 至少 %(min)s 个", c=category, min=low))
                    elif low == high:
                        parts.append(_("%(c)s %(n)s 个", c=category, n=high))
                    else:
                        parts.append(_("%(c)s %(min)s–%(max)s 个", c=category, min=low, max=high))
                lines.append(
                    _(
                        "各类别名额：%(quotas)s；先保证每个类别的最低名额，再按排名补足。",
                        quotas=_(";").join(parts),
                    )
                )
            if method.get("max_per_area") is not None:
                lines.append(_("每个居民区最多入选 %(n)s 个项目。", n=method["max_per_area"]))
    elif rule == "greedy_budget":
        lines.append(
            _(
                "在预算 %(b)s 以内按排名依次选取：放不下的项目跳过，继续看排在后面的项目。",
                b=_money(method.get("budget")),
            )
        )
    elif rule == "greedy_budget_no_skip":
        lines.append(
            _(
                "在预算 %(b)s 以内按排名依次选取，遇到第一个放不下的项目即停止。",
                b=_money(method.get("budget")),
            )
        )
    elif rule == "equal_shares":
        lines.append(
            _(
                "均等份额法（Method of Equal Shares）：预算 %(b)s 平均分给每张计入的选票，"
                "每个项目的经费由支持它的选票分摊，依次选出每份经费支持者最多的项目；"
                "最后按“add1”方式逐步增加人均预算，补足剩余经费。",
                b=_money(method.get("budget")),
            )
        )
    else:
        lines.append(rule)
    if rule in ("greedy_budget", "greedy_budget_no_skip") and method.get("winners") is not None:
        lines.append(
            _(
                "最多入选 %(n)s 个项目：名额用完后，排在后面的项目即使预算放得下也不再入选"
                "（标为“入选数量已满”）。",
                n=method["winners"],
            )
        )
    if method.get("min_votes"):
        lines.append(_("票数少于 %(n)s 的项目不能入选。", n=method["min_votes"]))
    return lines


def _notes_text(notes: list[dict] | None) -> list[str]:
    lines = []
    for note in notes or []:
        details = note.get("details") or {}
        if note.get("code") == "seats_unfilled":
            lines.append(
                _(
                    "%(w)s 个名额中只选满了 %(s)s 个：符合入选条件的项目不够。",
                    w=details.get("winners", "?"),
                    s=details.get("selected", "?"),
                )
            )
        elif note.get("code") == "constraints_ignored":
            lines.append(
                _(
                    "所选的评选规则不使用这些设置：%(f)s。",
                    f=", ".join(details.get("fields") or []),
                )
            )
        elif note.get("code") == "winners_cap_reached":
            lines.append(
                _(
                    "入选名额（%(w)s 个）已用完时预算还剩 %(left)s，%(codes)s 放得下但没有入选。",
                    w=details.get("winners", "?"),
                    left=_money(details.get("budget_left")),
                    codes="、".join(details.get("entries") or []),
                )
            )
        elif note.get("code") == "reviews_infeasible":
            for item in details.get("entries") or []:
                lines.append(
                    _(
                        "%(code)s 最多只能得到 %(n)s 份评审（至少需要 %(min)s 份）：%(why)s，"
                        "因此标为“评审数不足”，不能入选。",
                        code=item.get("code"),
                        n=item.get("reviewers_possible"),
                        min=item.get("min_reviews"),
                        why=infeasible_reason_words(item.get("reason")),
                    )
                )
        elif note.get("code") != "no_selection":  # said in the selection rule already
            lines.append(note.get("message") or note.get("code", ""))
    return lines


def _method_items(doc: dict) -> list[tuple[str, list[str]]]:
    """(heading, sentences) pairs, in the order a reader needs them."""
    method = doc["method"]
    wp, we = float(method["public_weight"]), float(method["expert_weight"])
    items: list[tuple[str, list[str]]] = [(_("综合得分"), [_weights_text(method)])]
    if wp > 0:
        items.append((_("公众投票"), [_vote_score_text(method["vote_score"])]))
    if we > 0:
        expert = [
            _("每份评审按评分细则折算为百分制：100 × Σ(权重 × 得分) ÷ Σ(权重 × 满分)。"),
        ]
        if "raw_score_decimals" in method:
            expert.append(
                _(
                    "每份评审分先保留 %(n)s 位小数，再参与校正和汇总；公布的原始分就是计算所用的分数。",
                    n=method["raw_score_decimals"],
                )
            )
        expert += [_aggregate_text(method["aggregate"]), _("没有评审的项目专家得分为 0。")]
        if method.get("min_reviews"):
            expert.append(
                _(
                    "评审少于 %(n)s 份的项目标为“评审数不足”：仍参加排名，但不能入选。",
                    n=method["min_reviews"],
                )
            )
        expert.append(_calibration_text(method["calibration"]))
        expert.extend(_calibration_fine_print(method))
        items.append((_("专家评审"), expert))
    chain = " → ".join(_tie_words(rule) or "" for rule in method["tie_break"])
    ties = [_("综合得分相同时依次比较：%(chain)s。", chain=chain)]
    if "lot" in method["tie_break"]:
        ties.append(
            _(
                "抽签是以公开的种子 %(seed)s 打乱顺序，种子由输入数据的摘要得出，任何人都可以复现。",
                seed=doc.get("lot_seed", "?"),
            )
        )
    items.append((_("同分处理"), ties))
    items.append((_("入选规则"), _selection_text(method) + _notes_text(doc.get("notes"))))
    return items


# --- table and chart -------------------------------------------------------------------


def _table_rows(doc: dict) -> list[dict[str, Any]]:
    return [
        {
            "rank": row["rank"],
            "code": row["code"],
            "title": row["title"],
            "category": row.get("category") or "",
            "area": row.get("area") or "",
            "cost": _money(row.get("cost")),
            "votes": row["votes"],
            "vote_score": _num(row["vote_score"]),
            "reviews": row["reviews"],
            "expert_score": _num(row["expert_score"]),
            "combined": _num(row["combined"]),
            "selected": bool(row["selected"]),
            "award": _award_words(row.get("award")) if row["selected"] else _("未入选"),
            "tie_break": _tie_words(row.get("tie_break")),
            "flags": [(flag, _flag_words(flag)) for flag in row.get("flags") or []],
        }
        for row in doc["rows"]
    ]


def _review_breakdown(doc: dict) -> dict[str, Any] | None:
    """Per entry, each review's raw score, the expert's adjustment and the calibrated
    score, and per expert the published calibration parameters; None for documents
    without the per-review detail (published before it existed)."""
    rows = [r for r in doc["rows"] if r.get("review_detail")]
    if not rows:
        return None
    method = doc["method"]
    calibration = doc.get("calibration") or {"how": method.get("calibration", "none")}
    how = calibration["how"]
    entries = []
    for row in rows:
        reviews = []
        for d in row["review_detail"]:
            notes = []
            if d.get("dropped"):
                notes.append(_("去掉的最高分或最低分"))
            if d.get("clipped"):
                notes.append(_("校正后超出范围，已截断"))
            if how == "additive":
                adjust = _("偏差 %(b)s", b=_num(d.get("bias")))
            elif how == "zscore":
                adjust = _("z = %(z)s", z=_num(d.get("z")))
            else:
                adjust = "—"
            reviews.append(
                {
                    "expert": d["expert"],
                    "raw": _num(d["raw"]),
                    "adjust": adjust,
                    "calibrated": _num(d["calibrated"]),
                    "notes": notes,
                }
            )
        entries.append(
            {
                "code": row["code"],
                "title": row["title"],
                "expert_score": _num(row["expert_score"]),
                "reviews": reviews,
                "aggregate": _aggregate_text(method["aggregate"]),
            }
        )
    experts = [
        {"expert": key, **{k: _num(v) if isinstance(v, float) else v for k, v in p.items()}}
        for key, p in sorted(
            (calibration.get("experts") or {}).items(),
            key=lambda item: (len(item[0]), item[0]),
        )
    ]
    panel = calibration.get("panel")
    return {
        "how": how,
        "entries": entries,
        "experts": experts,
        "panel": {k: _num(v) for k, v in panel.items()} if panel else None,
    }


def _text_width(text: str) -> float:
    """Rough width of ``text`` at TITLE_SIZE: CJK and full-width characters are square,
    the rest about half as wide."""
    return sum(TITLE_SIZE if ord(ch) > 0x2E7F else TITLE_SIZE * 0.58 for ch in text)


def _fit(text: str, width: float) -> str:
    """``text`` cut with an ellipsis to fit ``width`` (the full title is in the bar's
    tooltip and the table)."""
    if _text_width(text) <= width:
        return text
    while text and _text_width(text + "…") > width:
        text = text[:-1]
    return text + "…"


def _chart(doc: dict) -> dict[str, Any]:
    """Stacked horizontal bars (public part, then expert part), one per entry in rank
    order under a line with its rank and title, on a scale from 0 to the highest
    possible combined score."""
    method = doc["method"]
    rows = doc["rows"]
    wp, we = float(method["public_weight"]), float(method["expert_weight"])
    most = max([100.0 * (wp + we)] + [float(r["combined"]) for r in rows])
    domain = most if most > 0 else 100.0
    plot = CHART_WIDTH - VALUE_WIDTH
    scale = plot / domain
    height = CHART_TOP + ROW_PITCH * len(rows) + CHART_BOTTOM
    axis_y = CHART_TOP + ROW_PITCH * len(rows)
    bars = []
    for i, row in enumerate(rows):
        public_w = round(float(row["public_part"]) * scale, 2)
        expert_w = round(float(row["expert_part"]) * scale, 2)
        top = CHART_TOP + i * ROW_PITCH
        y = top + TITLE_HEIGHT
        star = "★ " if row["selected"] else ""
        bars.append(
            {
                "code": row["code"],
                "title": row["title"],
                "label": _fit(f"{star}{row['rank']}. {row['title']}", CHART_WIDTH),
                "selected": bool(row["selected"]),
                "y": y,
                "title_y": top + TITLE_HEIGHT - 4,
                "text_y": y + BAR_HEIGHT - 1.5,
                "public": _num(row["public_part"]),
                "expert": _num(row["expert_part"]),
                "combined": _num(row["combined"]),
                "public_w": public_w,
                "expert_x": public_w,
                "expert_w": expert_w,
                "value_x": round(public_w + expert_w + 4, 2),
            }
        )
    ticks = [
        {"x": round(plot * k / TICKS, 2), "label": _short(round(domain * k / TICKS, 1))}
        for k in range(TICKS + 1)
    ]
    return {
        "width": CHART_WIDTH,
        "height": height,
        "plot_x": 0,
        "bar_height": BAR_HEIGHT,
        "top": CHART_TOP - 6,
        "axis_y": axis_y,
        "tick_label_y": axis_y + 16,
        "ticks": ticks,
        "bars": bars,
        "public_weight": _percent(wp),
        "expert_weight": _percent(we),
    }


# --- the page --------------------------------------------------------------------------


def _not_published(campaign: Campaign):
    status = campaign_status(campaign)
    html = render_template(
        "results.html",
        campaign=campaign,
        not_published=True,
        status_label=status_label(status),
        vote_url=url_for("web.vote", slug=campaign.slug) if status == "voting" else None,
    )
    return make_response(html, 404)


def _interim_state(phase: str | None) -> str:
    """What was still going on when an interim version was published."""
    if phase == "voting":
        return _("投票进行中")
    if phase == "review":
        return _("专家评审进行中")
    return _("投票和评审尚未结束")


def page_context(campaign: Campaign, doc: dict[str, Any]) -> dict[str, Any]:
    """What ``results.html`` shows for a result document (the console's preview of a
    run uses it too, so the office sees exactly what the public will)."""
    method = doc["method"]
    provisional = bool(doc.get("provisional"))
    api = f"/api/v1/campaigns/{campaign.slug}"
    wp, we = float(method["public_weight"]), float(method["expert_weight"])
    rows = _table_rows(doc)
    interim = bool(doc.get("interim")) and not provisional
    return dict(
        campaign=campaign,
        not_published=False,
        doc=doc,
        provisional=provisional,
        interim=interim,
        interim_state=_interim_state(doc.get("phase_at_publication")),
        version=doc.get("version"),
        at=_local(campaign, doc.get("computed_at" if provisional else "published_at")),
        rows=rows,
        winners=sum(1 for r in rows if r["selected"]),
        # A vote-only campaign has no expert columns to show, and the reverse.
        show_votes=wp > 0 or doc.get("ballots_counted", 0) > 0,
        show_reviews=we > 0 or doc.get("reviews", 0) > 0,
        show_cost=method["rule"] in BUDGET_RULES,
        chart=_chart(doc),
        breakdown=_review_breakdown(doc) if we > 0 or doc.get("reviews", 0) > 0 else None,
        method_items=_method_items(doc),
        json_url=f"{api}/results",
        csv_url=None if provisional else f"{api}/results.csv",
        version_url=None if provisional else f"{api}/publications/{doc['version']}",
    )


def _page_html(campaign: Campaign, doc: dict[str, Any], **switches: Any) -> str:
    return render_template("results.html", **page_context(campaign, doc), **switches)


def text_size() -> str:
    """大字版 or not: the text size this visit chose (``?size=``, kept in the session)."""
    return "large" if session.get("size") == "large" else "normal"


def _switches(lang: str, size: str) -> dict[str, Any]:
    """The language and text-size links of a cached page, made from the page's own
    language and size only: never from the URL's other parameters (a tracking ``from=``,
    a ``token``), which would otherwise be baked into the copy everyone gets."""
    path = request.path
    return {
        "other_lang": ("中文", "zh-CN", f"{path}?lang=zh")
        if lang == "en"
        else ("English", "en", f"{path}?lang=en"),
        "size_switch": (_("标准字"), f"{path}?size=normal")
        if size == "large"
        else (_("大字版"), f"{path}?size=large"),
    }


def _uncached(slug: str):
    """Not published (404) or the live provisional run: rendered every time and marked
    so that nobody keeps it."""
    campaign = visible_campaign(slug, False)
    try:
        doc = results_document(campaign)
    except ApiError as exc:
        if exc.code != "not_published":
            raise
        response = _not_published(campaign)
    else:
        response = make_response(_page_html(campaign, doc))
    response.headers["Cache-Control"] = http_cache.UNCACHED
    return response


@limiter.request_filter
def _not_limited() -> bool:
    """The results page has no rate limit: Flask-Limiter skips its per-request work
    (``limiter.exempt`` alone still resolved the limits on every request)."""
    return request.endpoint == "web.results_page"


@bp.get("/results/<slug>")
def results_page(slug: str):
    """The latest publication (or the live provisional run) of a campaign, in words.

    A publication's page is rendered once per language and text size and served from
    ``http_cache`` (strong ETag, short ``max-age`` with revalidation, a gzip variant).
    The latest version is looked up per process at most every ``HOT_CACHE_SECONDS``
    (``latest_head``), so a new publication shows within a second. Query parameters
    other than ``lang`` and ``size`` (a messenger's ``?from=singlemessage``, say) change
    nothing on the page and are not part of the key: such links are served from the
    cache too. Not rate-limited: a hit costs no database query and no rendering."""
    head = latest_head(slug)
    if head is None:
        return _uncached(slug)
    lang = "en" if is_english() else "zh"
    size = text_size()
    key = (
        f"results-page:{head.id}:{head.version}:{head.digest}:{lang}:{size}:"
        f"{head.updated_at.timestamp()}:{PAGE_VERSION}"
    )

    def render() -> tuple[bytes, str]:
        campaign = get_campaign(slug)
        doc = publication_document(campaign, get_publication(campaign, head.version))
        html = _page_html(campaign, doc, **_switches(lang, size))
        return html.encode("utf-8"), "text/html"

    return http_cache.cached(key, render, http_cache.LATEST_CACHE_CONTROL, vary="Cookie")
