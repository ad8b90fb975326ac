from babel import Locale
from flask import render_template, request, session
from flask_babel import get_locale
from flask_babel import gettext as _

from ..errors import MESSAGES


def _headline(status: int, code: str) -> str:
    """What happened, in plain words, for an error page's heading."""
    if code == "csrf_failed":
        return _("页面已过期")
    return {
        400: _("请求有误"),
        401: _("需要登录或授权"),
        403: _("无权访问"),
        404: _("找不到这个页面"),
        405: _("不支持这种操作"),
        409: _("与现有数据冲突"),
        413: _("提交的内容太大"),
        422: _("填写的内容有误"),
        429: _("操作太频繁"),
        500: _("服务器出了问题"),
        503: _("服务暂时不可用"),
    }.get(status, _("出错了"))


def _explanation(status: int) -> str:
    """The generic advice for a status, used instead of the API's bilingual message."""
    return {
        400: _("页面无法处理这次请求。请返回上一页重试。"),
        401: _("请使用主办方提供的链接重新进入。"),
        403: _("您没有权限执行这个操作。如有疑问，请联系主办方。"),
        404: _("网址可能有误，或这个页面已经移除。请从首页重新进入。"),
        405: _("这个网址不支持这种操作。请从首页重新进入。"),
        413: _("提交的内容超过了上限（1 MiB）。请减少内容后重试。"),
        422: _("请检查填写的内容后重试。"),
        429: _("请稍等一分钟再试。"),
        500: _("请稍后再试。如果问题一直存在，请联系主办方。"),
        503: _("请过几分钟再试。"),
    }.get(status, _("请返回首页重试。"))


def error_page(status: int, code: str, message: str, headers=None):
    """An HTML error page in the visitor's language only: a plain headline, what to do,
    and the stable code in small print for support."""
    if message == MESSAGES.get(status):
        message = _explanation(status)
    response = render_template(
        "error.html",
        status=status,
        code=code,
        headline=_headline(status, code),
        message=in_voters_language(message),
    )
    return response, status, headers or {}


# Parsed once: Flask-Babel parses a string answer anew on every request.
ENGLISH = Locale.parse("en")
CHINESE = Locale.parse("zh_Hans_CN")


def select_locale() -> Locale:
    """Flask-Babel's locale selector, asked once per request (Flask-Babel keeps the
    answer): ``?lang=en|zh`` switches and is remembered in the session, written only
    when it changes (rewriting it marked the session modified, and so re-signed and
    re-sent the cookie, on every page)."""
    lang = request.args.get("lang")
    if lang in ("en", "zh") and session.get("lang") != lang:
        session["lang"] = lang
    return ENGLISH if session.get("lang") == "en" else CHINESE


def is_english() -> bool:
    return get_locale() == ENGLISH


def in_voters_language(message: str) -> str:
    """The half of a domain message ("中文 / English") in the page's language."""
    zh, sep, en = message.partition(" / ")
    return en if sep and is_english() else zh
