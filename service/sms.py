"""SMS providers behind one small interface: ``send(phone, code)``, raising ``SmsError``.

Chosen by ``SMS_PROVIDER``: ``console`` (development: one JSON line per message in
``instance/sms-outbox.jsonl``, the number masked), ``aliyun`` (Dysmsapi SendSms) or
``tencent`` (SMS 2021-01-11 SendSms). The real adapters call their provider inside the
request with short timeouts (``SMS_TIMEOUT_SECONDS``) and no retries, so a slow provider
costs a web worker a few seconds at most. Numbers and codes are never logged.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC
from pathlib import Path
from typing import Protocol

from flask import Flask, current_app

from .clock import now

CODE_MINUTES = 5
# Below the SDKs, urllib3 logs each request line (Aliyun puts the number and the code in
# the query string) and Tencent's SDK logs request bodies, all at DEBUG: never let those
# through, whatever LOG_LEVEL says.
CHATTY_LOGGERS = ("urllib3.connectionpool", "tencentcloud_sdk_common")


def _quiet_http_debug() -> None:
    for name in CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO or logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)


class SmsError(Exception):
    """The provider did not accept the message (``code`` is the provider's error code)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class SmsProvider(Protocol):
    name: str

    def send(self, phone: str, code: str) -> None:
        """Send the six-digit code to an 11-digit mainland number, or raise SmsError."""


def mask(phone: str) -> str:
    """139****5678: enough for a person to recognise their number, not to dial it."""
    return phone[:3] + "****" + phone[-4:]


def message_text(code: str) -> str:
    return f"您的投票验证码为 {code}，{CODE_MINUTES} 分钟内有效。请勿告诉他人。"


def _split_endpoint(value: str) -> tuple[str, str]:
    """``http://127.0.0.1:8081`` -> ("http", "127.0.0.1:8081"); a bare host is https."""
    if "://" in value:
        scheme, host = value.split("://", 1)
        return scheme.lower(), host.rstrip("/")
    return "https", value.rstrip("/")


class ConsoleProvider:
    """Development: appends ``{"to", "text", "sent_at"}`` to a JSON-lines file."""

    name = "console"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def send(self, phone: str, code: str) -> None:
        line = json.dumps(
            {
                "to": mask(phone),
                "text": message_text(code),
                "sent_at": now().astimezone(UTC).isoformat(timespec="seconds"),
            },
            ensure_ascii=False,
        )
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")


class AliyunProvider:
    """Alibaba Cloud SMS (alibabacloud-dysmsapi20170525); template parameter ``code``."""

    name = "aliyun"

    def __init__(self, config: dict) -> None:
        # Optional dependency: a provider's SDK is installed only where it is configured.
        from alibabacloud_dysmsapi20170525.client import Client
        from alibabacloud_tea_openapi.utils_models import Config as AliyunConfig

        _quiet_http_debug()
        scheme, host = _split_endpoint(config["SMS_ALIYUN_ENDPOINT"])
        timeout_ms = int(config["SMS_TIMEOUT_SECONDS"]) * 1000
        self.client = Client(
            AliyunConfig(
                access_key_id=config["SMS_ALIYUN_ACCESS_KEY_ID"],
                access_key_secret=config["SMS_ALIYUN_ACCESS_KEY_SECRET"],
                endpoint=host,
                protocol=scheme,
                region_id="cn-hangzhou",
                connect_timeout=timeout_ms,
                read_timeout=timeout_ms,
            )
        )
        self.sign_name = config["SMS_ALIYUN_SIGN_NAME"]
        self.template_code = config["SMS_ALIYUN_TEMPLATE_CODE"]

    def send(self, phone: str, code: str) -> None:
        from alibabacloud_dysmsapi20170525.models import SendSmsRequest  # optional dependency

        request = SendSmsRequest(
            phone_numbers=phone,
            sign_name=self.sign_name,
            template_code=self.template_code,
            template_param=json.dumps({"code": code}),
        )
        try:
            response = self.client.send_sms(request)
        except Exception as exc:  # network, timeout, HTTP error: the SDK's many types
            raise SmsError(str(getattr(exc, "code", None) or type(exc).__name__)) from None
        body = response.body
        if body is None or body.code != "OK":
            raise SmsError(str(getattr(body, "code", None) or "no_body"))


class TencentProvider:
    """Tencent Cloud SMS (tencentcloud-sdk-python-sms, 2021-01-11); template params
    ``[code, minutes]``."""

    name = "tencent"

    def __init__(self, config: dict) -> None:
        # Optional dependency: a provider's SDK is installed only where it is configured.
        from tencentcloud.common.credential import Credential
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile
        from tencentcloud.sms.v20210111.sms_client import SmsClient

        _quiet_http_debug()
        scheme, host = _split_endpoint(config["SMS_TENCENT_ENDPOINT"])
        http = HttpProfile(
            protocol=scheme, endpoint=host, reqTimeout=int(config["SMS_TIMEOUT_SECONDS"])
        )
        self.client = SmsClient(
            Credential(config["SMS_TENCENT_SECRET_ID"], config["SMS_TENCENT_SECRET_KEY"]),
            config["SMS_TENCENT_REGION"],
            ClientProfile(httpProfile=http),
        )
        self.app_id = config["SMS_TENCENT_SDK_APP_ID"]
        self.sign_name = config["SMS_TENCENT_SIGN_NAME"]
        self.template_id = config["SMS_TENCENT_TEMPLATE_ID"]

    def send(self, phone: str, code: str) -> None:
        from tencentcloud.sms.v20210111.models import SendSmsRequest  # optional dependency

        request = SendSmsRequest()
        request.PhoneNumberSet = ["+86" + phone]
        request.SmsSdkAppId = self.app_id
        request.SignName = self.sign_name
        request.TemplateId = self.template_id
        request.TemplateParamSet = [code, str(CODE_MINUTES)]
        try:
            response = self.client.SendSms(request)
        except Exception as exc:  # TencentCloudSDKException and anything below it
            raise SmsError(str(getattr(exc, "code", None) or type(exc).__name__)) from None
        statuses = response.SendStatusSet or []
        if not statuses or statuses[0].Code != "Ok":
            raise SmsError(str(statuses[0].Code if statuses else "no_status"))


def build_provider(app: Flask) -> SmsProvider:
    config = app.config
    if config["SMS_PROVIDER"] == "aliyun":
        return AliyunProvider(config)
    if config["SMS_PROVIDER"] == "tencent":
        return TencentProvider(config)
    return ConsoleProvider(Path(app.instance_path) / "sms-outbox.jsonl")


def provider() -> SmsProvider:
    """The app's provider, built once on first use."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # LocalProxy's
    cached = app.extensions.get("sms_provider")
    if cached is None:
        cached = app.extensions["sms_provider"] = build_provider(app)
    return cached
