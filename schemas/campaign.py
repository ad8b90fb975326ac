"""Campaign document: request and response (DESIGN.md, "Campaign document")."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from engine.vocabulary import (
    AGGREGATES,
    BUDGET_RULES,
    CALIBRATIONS,
    RULES,
    TIE_RULES,
    VOTE_SCORES,
)

from .common import KEY_PATTERN, SLUG_PATTERN, Rfc3339, Text
from .rules import CHANNELS, DEFAULTS, ELIGIBILITY, LIMITS, VERIFY, VOTER_ID_KINDS, Quota

# The defaults of every field below: one place (schemas/rules.py).
V, RV, RK, S, RS = (
    DEFAULTS.voting,
    DEFAULTS.review,
    DEFAULTS.ranking,
    DEFAULTS.selection,
    DEFAULTS.results,
)

# Fields of each section that stay editable after the rules lock (texts and windows).
UNLOCKED = {
    # The SMS budget is money, not a rule: an office may raise it mid-campaign.
    "voting": {"opens_at", "closes_at", "kiosk_grace_hours", "sms_daily_budget"},
    "review": {"opens_at", "closes_at"},
    "results": {"live", "auto_publish"},
}


def _window(data, section):
    opens, closes = data.get("opens_at"), data.get("closes_at")
    if opens and closes and closes <= opens:
        raise ValidationError(
            f"{section} 的结束时间须晚于开始时间 / closes_at must be after opens_at",
            "closes_at",
        )


class VotingSchema(Schema):
    opens_at = Rfc3339(allow_none=True, load_default=None)
    closes_at = Rfc3339(allow_none=True, load_default=None)
    min_choices = fields.Integer(
        load_default=V.min_choices, validate=validate.Range(min=1, max=500)
    )
    max_choices = fields.Integer(
        load_default=V.max_choices, validate=validate.Range(min=1, max=500)
    )
    limit = Text(load_default=V.limit, validate=validate.OneOf(LIMITS))
    voter_id = Text(load_default=V.voter_id, validate=validate.OneOf(VOTER_ID_KINDS))
    channels = fields.List(
        Text(validate=validate.OneOf(CHANNELS)),
        load_default=lambda: list(V.channels),
        validate=validate.Length(min=1),
    )
    kiosk_grace_hours = fields.Float(
        load_default=V.kiosk_grace_hours, validate=validate.Range(min=0, max=24 * 14)
    )
    # Who may vote: anyone with a valid identifier, or only identifiers on the roll
    # (POST …/roll); with area_scope a voter chooses only entries of their own area/grid.
    eligibility = Text(load_default=V.eligibility, validate=validate.OneOf(ELIGIBILITY))
    area_scope = fields.Boolean(load_default=V.area_scope)
    # SMS one-time codes for web ballots (kiosks are attended: only with verify_kiosk).
    verify = Text(load_default=V.verify, validate=validate.OneOf(VERIFY))
    verify_kiosk = fields.Boolean(load_default=V.verify_kiosk)
    sms_daily_budget = fields.Integer(
        load_default=V.sms_daily_budget, validate=validate.Range(min=1, max=10_000_000)
    )

    @validates_schema
    def check(self, data, **kwargs):
        _window(data, "voting")
        if data["area_scope"] and data["eligibility"] != "roll":
            raise ValidationError(
                "按区域投票需要选民名册 / area_scope needs eligibility roll", "area_scope"
            )
        if data["verify"] == "sms" and data["voter_id"] != "cn_mobile":
            raise ValidationError(
                "短信验证码需要以手机号作为投票人标识 / verify: sms needs voter_id: cn_mobile",
                "verify",
            )
        if data["verify_kiosk"] and data["verify"] != "sms":
            raise ValidationError(
                "verify_kiosk 需要 verify: sms / verify_kiosk needs verify: sms", "verify_kiosk"
            )
        if data["min_choices"] > data["max_choices"]:
            raise ValidationError(
                "最少选择数不能大于最多选择数 / min_choices must not exceed max_choices",
                "min_choices",
            )
        if len(set(data["channels"])) != len(data["channels"]):
            raise ValidationError("渠道重复 / duplicate channel", "channels")


class CriterionSchema(Schema):
    key = Text(required=True, validate=validate.Regexp(KEY_PATTERN))
    label = Text(load_default="", validate=validate.Length(max=200))
    max_points = fields.Float(
        required=True, validate=validate.Range(min=0, min_inclusive=False, max=10000)
    )
    weight = fields.Float(load_default=1.0, validate=validate.Range(min=0, max=1000))


class ReviewSchema(Schema):
    opens_at = Rfc3339(allow_none=True, load_default=None)
    closes_at = Rfc3339(allow_none=True, load_default=None)
    min_reviews = fields.Integer(
        load_default=RV.min_reviews, validate=validate.Range(min=0, max=1000)
    )
    aggregate = Text(load_default=RV.aggregate, validate=validate.OneOf(AGGREGATES))
    calibration = Text(load_default=RV.calibration, validate=validate.OneOf(CALIBRATIONS))
    recuse_same_area = fields.Boolean(load_default=RV.recuse_same_area)
    criteria = fields.List(fields.Nested(CriterionSchema), load_default=list)

    @validates_schema
    def check(self, data, **kwargs):
        _window(data, "review")
        keys = [c["key"] for c in data["criteria"]]
        if len(keys) != len(set(keys)):
            raise ValidationError("评分项 key 重复 / criteria keys must be unique", "criteria")
        criteria = data["criteria"]
        if criteria and not any(c["weight"] > 0 for c in criteria):
            raise ValidationError(
                "至少一个评分项权重须大于零 / a criterion needs weight > 0", "criteria"
            )


class RankingSchema(Schema):
    public_weight = fields.Float(
        load_default=RK.public_weight, validate=validate.Range(min=0, max=1000)
    )
    expert_weight = fields.Float(
        load_default=RK.expert_weight, validate=validate.Range(min=0, max=1000)
    )
    vote_score = Text(load_default=RK.vote_score, validate=validate.OneOf(VOTE_SCORES))
    tie_break = fields.List(
        Text(validate=validate.OneOf(TIE_RULES)),
        load_default=lambda: list(RK.tie_break),
    )

    @validates_schema
    def check(self, data, **kwargs):
        if data["public_weight"] == 0 and data["expert_weight"] == 0:
            raise ValidationError(
                "公众与专家权重不能同时为零 / public_weight and expert_weight cannot both be zero",
                "expert_weight",
            )
        chain = data["tie_break"]
        if len(chain) != len(set(chain)):
            raise ValidationError("平局规则重复 / duplicate tie-break rule", "tie_break")


class QuotaSchema(Schema):
    min = fields.Integer(load_default=Quota.min, validate=validate.Range(min=0))
    max = fields.Integer(allow_none=True, load_default=Quota.max, validate=validate.Range(min=0))

    @validates_schema
    def check(self, data, **kwargs):
        if data["max"] is not None and data["min"] > data["max"]:
            raise ValidationError("min 不能大于 max / min must not exceed max", "min")


class SelectionSchema(Schema):
    rule = Text(load_default=S.rule, validate=validate.OneOf(RULES))
    winners = fields.Integer(
        allow_none=True, load_default=S.winners, validate=validate.Range(min=1)
    )
    budget = fields.Float(
        allow_none=True, load_default=S.budget, validate=validate.Range(min=0, min_inclusive=False)
    )
    categories = fields.Dict(
        keys=Text(validate=validate.Length(min=1, max=100)),
        values=fields.Nested(QuotaSchema),
        load_default=dict,
    )
    max_per_area = fields.Integer(
        allow_none=True, load_default=S.max_per_area, validate=validate.Range(min=1)
    )
    award = Text(allow_none=True, load_default=S.award, validate=validate.Length(max=100))
    # Entries with fewer votes cannot be selected (a participation threshold).
    min_votes = fields.Integer(load_default=S.min_votes, validate=validate.Range(min=0))

    @validates_schema
    def check(self, data, **kwargs):
        rule = data["rule"]
        if rule in BUDGET_RULES and data["budget"] is None:
            raise ValidationError(f"规则 {rule} 需要预算 / rule {rule} needs a budget", "budget")
        if rule == "top" and data["winners"] is None:
            raise ValidationError("规则 top 需要入选数 / rule top needs winners", "winners")
        quotas = data["categories"]
        if quotas and rule != "top":
            raise ValidationError(
                "类别配额仅适用于 top 规则 / category quotas apply to rule top only", "categories"
            )
        winners = data["winners"]
        if quotas and winners is not None:
            minima = sum(q["min"] for q in quotas.values())
            if minima > winners:
                raise ValidationError(
                    f"各类别最少名额之和 {minima} 超过入选数 {winners} / "
                    f"category minima ({minima}) exceed winners ({winners})",
                    "categories",
                )


class ResultsSchema(Schema):
    live = fields.Boolean(load_default=RS.live)
    auto_publish = fields.Boolean(load_default=RS.auto_publish)


class CampaignSchema(Schema):
    slug = Text(required=True, validate=validate.Regexp(SLUG_PATTERN))
    draft = fields.Boolean(load_default=False)
    title = Text(required=True, validate=validate.Length(min=1, max=300))
    description = Text(allow_none=True, load_default=None, validate=validate.Length(max=20000))
    timezone = Text(load_default="Asia/Shanghai")
    voting = fields.Nested(VotingSchema, load_default=lambda: VotingSchema().load({}))
    review = fields.Nested(ReviewSchema, load_default=lambda: ReviewSchema().load({}))
    ranking = fields.Nested(RankingSchema, load_default=lambda: RankingSchema().load({}))
    selection = fields.Nested(SelectionSchema, required=True)
    results = fields.Nested(ResultsSchema, load_default=lambda: ResultsSchema().load({}))
    # Server-side fields.
    status = Text(dump_only=True)
    rules_locked = fields.Boolean(dump_only=True)
    entries_count = fields.Integer(dump_only=True)
    created_at = Rfc3339(dump_only=True)
    updated_at = Rfc3339(dump_only=True)

    @validates("timezone")
    def check_timezone(self, value, **kwargs):
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValidationError(f"未知时区 / unknown timezone: {value}") from exc

    @validates_schema
    def check(self, data, **kwargs):
        if data["ranking"]["expert_weight"] > 0 and not data["review"]["criteria"]:
            raise ValidationError(
                "专家权重大于零时须设置评分细则 / expert_weight > 0 needs review.criteria",
                "review",
            )


class CampaignPatchSchema(Schema):
    """A PATCH is a partial campaign document; it is merged, then validated whole."""

    class Meta:
        unknown = "include"


# Field descriptions for the OpenAPI document (schemas/campaign_docs.py; docs/campaign.md).
from .campaign_docs import describe  # noqa: E402

describe({name: obj for name, obj in globals().items() if name.endswith("Schema")})
